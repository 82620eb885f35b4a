package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/explain"
	"github.com/meshentry/meshentry/internal/registry"
)

// policyFlag parses --outbound-policy.
func parsePolicy(s string) (allowAny bool, err error) {
	switch strings.ToUpper(s) {
	case "REGISTRY_ONLY", "":
		return false, nil
	case "ALLOW_ANY":
		return true, nil
	}
	return false, usageError("--outbound-policy must be REGISTRY_ONLY or ALLOW_ANY, not %q", s)
}

// explainFlags are explain's flags.
type explainFlags struct {
	src                                                sourceFlags
	pf                                                 policyFlags
	dx                                                 explainDNSFlags
	hf                                                 httpFlags
	locality, network, ip, host, protocol, policy, out string
	port                                               uint32
}

func newExplainCommand() *cobra.Command {
	var e explainFlags
	cmd := &cobra.Command{
		Use:   "explain -f PATH... --port N (--host HOST | --ip IP)",
		Short: "Say which service, cluster and endpoints a request would get, and why",
		Long: "explain matches a destination (the IP the application connected to and/or the Host or SNI it sent) " +
			"as the proxy of a workload in --namespace would, and lists the candidate endpoints in the order the proxy prefers them. " +
			"It exits 3 when the request would be refused.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return e.run(cmd) },
	}
	e.src.register(cmd)
	f := cmd.Flags()
	f.StringVar(&e.locality, "locality", "", "the proxy's locality, region/zone/subzone")
	f.StringVar(&e.network, "network", "", "the proxy's network")
	f.StringVar(&e.ip, "ip", "", "destination IP the application connected to")
	f.StringVar(&e.host, "host", "", "Host header, SNI or CONNECT host the application sent")
	f.Uint32Var(&e.port, "port", 0, "destination port")
	f.StringVar(&e.protocol, "protocol", "", "traffic kind: http, tls or tcp as a sidecar sees it (default: what the declared port implies), or connect for a CONNECT tunnel through the forward proxy")
	f.StringVar(&e.policy, "outbound-policy", "REGISTRY_ONLY", "REGISTRY_ONLY refuses what no ServiceEntry declares; ALLOW_ANY passes it through")
	f.StringVarP(&e.out, "output", "o", "text", "output format: text or json")
	e.pf.register(f)
	e.hf.register(f)
	e.dx.register(f)
	return cmd
}

func (e *explainFlags) run(cmd *cobra.Command) error {
	if e.dx.host != "" {
		return e.dx.explainDNS(cmd, &e.src, &e.pf, e.out)
	}
	req, err := e.request()
	if err != nil {
		return err
	}
	dnsOpts, err := e.dx.compileOptions()
	if err != nil {
		return err
	}
	res, err := e.src.compile(cmd, 1, dnsOpts...)
	if err != nil {
		return err
	}
	// The request is explained against the valid documents; the rest are reported, not fatal.
	for _, d := range res.Diagnostics {
		if d.Level == diag.Error {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
	}
	rep := explainRequest(res.Snapshot, req, e.hf.asGateway)
	if e.out == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return &exitError{code: 2, err: err}
		}
	} else {
		rep.WriteText(cmd.OutOrStdout())
	}
	if rep.Refused() {
		return &exitError{code: 3}
	}
	return nil
}

// request reads the flags into the request to explain.
func (e *explainFlags) request() (explain.Request, error) {
	req := explain.Request{Namespace: e.src.namespace, Host: e.host, Port: e.port, Locality: e.locality, Network: e.network}
	if e.out != "text" && e.out != "json" {
		return req, usageError("-o must be text or json, not %q", e.out)
	}
	if e.port == 0 || e.port > 65535 {
		return req, usageError("--port is required (1-65535)")
	}
	if e.host == "" && e.ip == "" {
		return req, usageError("give --host, --ip or both")
	}
	if e.ip != "" {
		a, err := netip.ParseAddr(e.ip)
		if err != nil {
			return req, usageError("--ip: %v", err)
		}
		req.IP = a
	}
	if err := setProtocol(&req, e.protocol); err != nil {
		return req, err
	}
	if err := e.hf.apply(&req); err != nil {
		return req, err
	}
	var err error
	if req.AllowAny, err = parsePolicy(e.policy); err != nil {
		return req, err
	}
	req.RootNamespace, req.Labels, err = e.pf.parse()
	return req, err
}

// httpFlags are the parts of an HTTP request that VirtualService rules match, and the gateway
// to explain as.
type httpFlags struct {
	gateway, method, path, scheme string
	headers                       []string
	// asGateway explains as `run --gateway --labels` would: the Gateways --labels select.
	asGateway bool
}

func (h *httpFlags) register(f *pflag.FlagSet) {
	f.StringVar(&h.gateway, "gateway", "", "explain as the gateway NS/NAME routes the request (its VirtualServices), not as a sidecar")
	f.BoolVar(&h.asGateway, "as-gateway", false, "explain as the gateway workload carrying --labels (as run --gateway serves it): every Gateway whose selector they match, and the VirtualServices bound to the one whose server takes the request")
	f.StringVar(&h.method, "method", "GET", "HTTP method, for VirtualService method matches")
	f.StringVar(&h.path, "path", "/", "HTTP path and query, for VirtualService uri and queryParams matches")
	f.StringVar(&h.scheme, "scheme", "http", "HTTP scheme, for VirtualService scheme matches")
	f.StringArrayVar(&h.headers, "header", nil, "an HTTP request header as name=value or \"name: value\", for headers matches (repeatable)")
}

func (h *httpFlags) apply(req *explain.Request) error {
	if h.gateway != "" {
		ns, name, ok := strings.Cut(h.gateway, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return usageError("--gateway must be NAMESPACE/NAME, not %q", h.gateway)
		}
		req.Gateway = h.gateway
	}
	if h.asGateway && h.gateway != "" {
		return usageError("give --gateway NS/NAME or --as-gateway, not both")
	}
	if !strings.HasPrefix(h.path, "/") {
		return usageError("--path must start with /, not %q", h.path)
	}
	req.HTTP = explain.HTTPRequest{Method: h.method, Path: h.path, Scheme: h.scheme, Headers: map[string]string{}}
	for _, kv := range h.headers {
		i := strings.IndexAny(kv, "=:")
		if i <= 0 {
			return usageError("--header must be name=value or \"name: value\", not %q", kv)
		}
		req.HTTP.Headers[strings.ToLower(strings.TrimSpace(kv[:i]))] = strings.TrimSpace(kv[i+1:])
	}
	return nil
}

// explainRequest explains req as a sidecar, or as a gateway (--gateway, --as-gateway): then the
// gateway's server is found first, and with --as-gateway the Gateway it belongs to is the one
// whose VirtualServices route the request.
func explainRequest(snap *registry.Snapshot, req explain.Request, asGateway bool) *explain.Report {
	var gs *explain.GatewayServer
	switch {
	case asGateway:
		gs = explain.ExplainGatewayWorkload(snap.Documents, req.Labels, req.Host, req.Port)
		if gs.Accepted {
			req.Gateway = gs.Gateway
		}
	case req.Gateway != "":
		gs = explain.ExplainGateway(snap.Documents, req.Gateway, req.Host, req.Port)
	}
	rep := explain.Explain(snap, req)
	rep.Gateway = gs
	return rep
}

// setProtocol reads --protocol into req: the traffic kind a sidecar would see, or a CONNECT.
func setProtocol(req *explain.Request, protocol string) error {
	switch strings.ToLower(protocol) {
	case "":
		req.Protocol = registry.TrafficAny
	case "http":
		req.Protocol = registry.TrafficHTTP
	case "tls":
		req.Protocol = registry.TrafficTLS
	case "tcp":
		req.Protocol = registry.TrafficTCP
	case "connect":
		req.Connect = true
	default:
		return usageError("--protocol must be http, tls, tcp or connect, not %q", protocol)
	}
	return nil
}
