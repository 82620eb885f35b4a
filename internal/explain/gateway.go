package explain

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/gateway"
	"github.com/meshentry/meshentry/internal/registry"
)

// GatewayServer is the Gateway server that takes a request at a gateway proxy, as
// `run --gateway` decides: by SNI among a TLS port's servers, by Host among a plaintext port's.
type GatewayServer struct {
	// Accepted is false when no server of the port takes the host; Reason says why either way.
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason"`
	// Gateway is "ns/name", Server the index in spec.servers, File and Line where it is written.
	Gateway  string `json:"gateway,omitempty"`
	Server   int    `json:"server"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol,omitempty"`
	// Mode is the server's handling: http, tls passthrough, terminate tls then http, ...
	Mode string `json:"mode,omitempty"`
	// Host is the server's hosts entry that covers the request's host.
	Host string `json:"host,omitempty"`
}

// ExplainGateway says which server of the Gateway gw ("ns/name") takes host on port: the same
// choice the listener of `run --gateway` makes. host is the SNI on a TLS port, the Host
// otherwise.
func ExplainGateway(docs []*config.Document, gw, host string, port uint32) *GatewayServer {
	var named []*config.Document
	var labels map[string]string
	for _, d := range docs {
		if d.Gateway() != nil && d.Namespace+"/"+d.Name == gw {
			named, labels = append(named, d), d.Gateway().GetSelector()
		}
	}
	if len(named) == 0 {
		return &GatewayServer{Port: port, Reason: fmt.Sprintf("no Gateway %s is declared", gw)}
	}
	return explainSelected(named, labels, "Gateway "+gw, host, port)
}

// ExplainGatewayWorkload is ExplainGateway for the gateway workload carrying labels, as
// `run --gateway --labels` serves it: every Gateway whose selector matches labels shares its
// ports, and the server that takes host names the Gateway whose VirtualServices route it.
func ExplainGatewayWorkload(docs []*config.Document, labels map[string]string, host string, port uint32) *GatewayServer {
	return explainSelected(docs, labels, fmt.Sprintf("any Gateway selecting %s", labelList(labels)), host, port)
}

func labelList(labels map[string]string) string {
	if len(labels) == 0 {
		return "no labels"
	}
	kv := make([]string, 0, len(labels))
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// explainSelected finds the server among the Gateways of docs that labels select; what names
// them in the reasons.
func explainSelected(docs []*config.Document, labels map[string]string, what, host string, port uint32) *GatewayServer {
	out := &GatewayServer{Port: port}
	ls, err := gateway.Select(docs, labels)
	if err != nil {
		out.Reason = "the selected Gateways cannot be served: " + err.Error()
		return out
	}
	var l *gateway.Listener
	for _, c := range ls {
		if c.Port == port {
			l = c
		}
	}
	if l == nil {
		out.Reason = fmt.Sprintf("no server of %s listens on port %d (ports: %s)", what, port, portList(ls))
		return out
	}
	name := registry.NormalizeHost(host)
	s := pickServer(l, name)
	if s == nil {
		out.Reason = fmt.Sprintf("no server on port %d declares a host covering %q; the gateway answers 404 (HTTP) or closes the connection (TLS)", port, name)
		return out
	}
	h, _ := s.Accepts(name)
	if s.Kind == gateway.KindAutoPassthrough {
		if a, ok := gateway.ParseAutoSNI(name); ok {
			h, _ = s.Accepts(a.Host)
		}
	}
	out.Accepted = true
	out.Gateway, out.Server, out.Protocol, out.Mode, out.Host = s.Gateway, s.Index, s.Protocol, s.Kind.String(), h.String()
	out.File, out.Line = s.Doc.File, s.Doc.LineOf(fmt.Sprintf("spec.servers[%d]", s.Index))
	out.Reason = fmt.Sprintf("server %d of Gateway %s declares %s, which covers %q", s.Index, s.Gateway, h, name)
	return out
}

// pickServer is the listener's choice: by SNI on a TLS port (the AUTO_PASSTHROUGH SNI's host
// must be covered too), the first server whose hosts cover the Host on a plaintext one.
func pickServer(l *gateway.Listener, name string) *gateway.Server {
	switch l.Servers[0].Kind {
	case gateway.KindHTTP, gateway.KindTCP:
		for _, s := range l.Servers {
			if _, ok := s.Accepts(name); ok || s.Kind == gateway.KindTCP {
				return s
			}
		}
		return nil
	}
	s := l.BySNI(name)
	if s != nil && s.Kind == gateway.KindAutoPassthrough {
		if _, ok := gateway.ParseAutoSNI(name); !ok {
			return nil // the gateway closes it: the SNI names no cluster
		}
	}
	return s
}

func portList(ls []*gateway.Listener) string {
	if len(ls) == 0 {
		return "none"
	}
	var ps []string
	for _, l := range ls {
		ps = append(ps, fmt.Sprint(l.Port))
	}
	return strings.Join(ps, ", ")
}

// WriteText prints the gateway server lines of a report.
func (g *GatewayServer) WriteText(w io.Writer) {
	if !g.Accepted {
		fmt.Fprintf(w, "gateway:      not accepted: %s\n", g.Reason)
		return
	}
	fmt.Fprintf(w, "gateway:      %s server %d (port %d %s, %s), %s:%d\n", g.Gateway, g.Server, g.Port, g.Protocol, g.Mode, g.File, g.Line)
	fmt.Fprintf(w, "gateway host: %s (%s)\n", g.Host, g.Reason)
}
