package gateway

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// Kind is how a server handles a connection before routing it.
type Kind uint8

const (
	// KindHTTP serves plaintext HTTP (protocols HTTP, HTTP2, GRPC) and routes with http routes.
	KindHTTP Kind = iota
	// KindTerminateHTTP terminates TLS (SIMPLE, MUTUAL, ISTIO_MUTUAL) and routes the HTTP inside.
	KindTerminateHTTP
	// KindTerminateTCP terminates TLS and routes the bytes inside with tcp routes.
	KindTerminateTCP
	// KindPassthrough routes a TLS connection by its SNI without terminating it (tls routes).
	KindPassthrough
	// KindAutoPassthrough routes by an SNI of Istio's outbound_.PORT_.SUBSET_.HOST form.
	KindAutoPassthrough
	// KindTCP routes opaque bytes with tcp routes.
	KindTCP
)

// String names the kind for logs and explain.
func (k Kind) String() string {
	return [...]string{"http", "terminate tls, then http", "terminate tls, then tcp", "tls passthrough", "tls auto passthrough", "tcp"}[k]
}

// terminates reports whether the kind ends TLS at the gateway.
func (k Kind) terminates() bool { return k == KindTerminateHTTP || k == KindTerminateTCP }

// Server is one server of a selected Gateway.
type Server struct {
	// Gateway is the Gateway's "namespace/name", the name VirtualServices bind to.
	Gateway string
	// Doc is the Gateway's document, Index the server's position in spec.servers.
	Doc   *config.Document
	Index int
	// Port is the server's port number, Protocol its declared protocol (upper case), Name the
	// port's name.
	Port     uint32
	Protocol string
	Name     string
	Kind     Kind
	// Hosts are the server's hosts, parsed.
	Hosts []Host
	// TLS is the server's tls block, nil without one.
	TLS *networking.ServerTLSSettings
}

// Where names the server for logs and explain: "Gateway ns/name server 0 (port 80 HTTP) at file:line".
func (s *Server) Where() string {
	return s.name() + " at " + s.Pos()
}

// Pos is the server's file:line.
func (s *Server) Pos() string {
	return fmt.Sprintf("%s:%d", s.Doc.File, s.Doc.LineOf(fmt.Sprintf("spec.servers[%d]", s.Index)))
}

// name is the server without its position: "Gateway ns/name server 0 (port 80 HTTP)".
func (s *Server) name() string {
	return fmt.Sprintf("Gateway %s server %d (port %d %s)", s.Gateway, s.Index, s.Port, s.Protocol)
}

// Listener is the servers sharing one port: Istio serves them on one listener.
type Listener struct {
	Port    uint32
	Servers []*Server
}

// Select returns the servers of the Gateways whose selector matches labels, one Listener per
// port in port order. A port whose servers cannot share one listener (plaintext with TLS, or TLS
// servers that would be told apart by SNI with a host in common) is an error naming both.
func Select(docs []*config.Document, labels map[string]string) ([]*Listener, error) {
	byPort := map[uint32]*Listener{}
	for _, d := range docs {
		gw := d.Gateway()
		if gw == nil || !selects(gw.GetSelector(), labels) {
			continue
		}
		for i, s := range gw.GetServers() {
			srv, err := newServer(d, i, s)
			if err != nil {
				return nil, err
			}
			l := byPort[srv.Port]
			if l == nil {
				l = &Listener{Port: srv.Port}
				byPort[srv.Port] = l
			}
			if err := l.add(srv); err != nil {
				return nil, err
			}
		}
	}
	out := make([]*Listener, 0, len(byPort))
	for _, l := range byPort {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b *Listener) int { return int(a.Port) - int(b.Port) })
	return out, nil
}

// selects reports whether a Gateway selector matches the proxy's labels; an empty selector
// matches every gateway workload, as in Istio.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func newServer(d *config.Document, i int, s *networking.Server) (*Server, error) {
	gwName := d.Namespace + "/" + d.Name
	srv := &Server{Gateway: gwName, Doc: d, Index: i, Port: s.GetPort().GetNumber(),
		Protocol: strings.ToUpper(s.GetPort().GetProtocol()), Name: s.GetPort().GetName(), TLS: s.GetTls()}
	where := fmt.Sprintf("%s:%d: Gateway %s spec.servers[%d]", d.File, d.LineOf(fmt.Sprintf("spec.servers[%d]", i)), gwName, i)
	if srv.Port == 0 || srv.Port > 65535 {
		return nil, fmt.Errorf("%s: port.number %d is not a port", where, srv.Port)
	}
	if len(s.GetHosts()) == 0 {
		return nil, fmt.Errorf("%s: hosts is empty", where)
	}
	for _, h := range s.GetHosts() {
		srv.Hosts = append(srv.Hosts, ParseHost(h, d.Namespace))
	}
	k, err := kindOf(srv.Protocol, srv.TLS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	srv.Kind = k
	return srv, nil
}

// kindOf decides how a server of protocol with tls handles its connections, as Istio does.
func kindOf(protocol string, tls *networking.ServerTLSSettings) (Kind, error) {
	fam := registry.ProtocolFamily(protocol)
	switch {
	case protocol == "HTTPS" || protocol == "TLS":
		if tls == nil {
			return 0, fmt.Errorf("protocol %s needs a tls block", protocol)
		}
		switch tls.GetMode() {
		case networking.ServerTLSSettings_PASSTHROUGH:
			return KindPassthrough, nil
		case networking.ServerTLSSettings_AUTO_PASSTHROUGH:
			return KindAutoPassthrough, nil
		case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_ISTIO_MUTUAL:
			if protocol == "TLS" {
				return KindTerminateTCP, nil
			}
			return KindTerminateHTTP, nil
		}
		return 0, fmt.Errorf("tls mode %s is not supported", tls.GetMode())
	case fam == registry.FamilyHTTP:
		return KindHTTP, nil
	case fam == registry.FamilyTCP:
		return KindTCP, nil
	}
	return 0, fmt.Errorf("protocol %q cannot be served by a gateway", protocol)
}

// add puts srv on the listener, refusing a mix Istio could not serve on one port.
func (l *Listener) add(srv *Server) error {
	for _, o := range l.Servers {
		tlsNew, tlsOld := srv.Kind != KindHTTP && srv.Kind != KindTCP, o.Kind != KindHTTP && o.Kind != KindTCP
		switch {
		case tlsNew != tlsOld:
			return fmt.Errorf("%s: %s and %s share port %d, but one is plaintext and the other TLS", srv.Pos(), srv.name(), o.Where(), l.Port)
		case srv.Kind == KindTCP || o.Kind == KindTCP:
			if srv.Kind != o.Kind {
				return fmt.Errorf("%s: %s and %s share port %d with protocols that cannot share it", srv.Pos(), srv.name(), o.Where(), l.Port)
			}
		case tlsNew && sharesSNI(srv, o):
			return fmt.Errorf("%s: %s and %s share port %d and a host, so SNI cannot tell them apart", srv.Pos(), srv.name(), o.Where(), l.Port)
		}
	}
	l.Servers = append(l.Servers, srv)
	return nil
}

// sharesSNI reports whether two TLS servers declare the same host name.
func sharesSNI(a, b *Server) bool {
	for _, ha := range a.Hosts {
		for _, hb := range b.Hosts {
			if ha.DNS == hb.DNS {
				return true
			}
		}
	}
	return false
}
