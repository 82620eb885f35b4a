package envoy

import (
	"net/netip"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// walkReq is a connection as the virtual outbound listener receives it.
type walkReq struct {
	kind string // http, tls or tcp
	host string
	ip   netip.Addr
	port uint32
}

// walk follows req through res as Envoy would: the listener of the original destination port
// (else the virtual listener), its filter chain by destination IP and SNI, the connection
// manager's route table, the virtual host by domain, the first route matching "/" and its
// cluster (the heaviest of weighted clusters). It returns the cluster or a why-not.
func walk(res Resources, req walkReq) string {
	var lis *listener.Listener
	for _, r := range res[resource.ListenerType] {
		if l := r.(*listener.Listener); l.Name == "0.0.0.0_"+itoa(req.port) {
			lis = l
		}
	}
	if lis == nil {
		for _, r := range res[resource.ListenerType] {
			if l := r.(*listener.Listener); l.Name == VirtualOutbound {
				lis = l
			}
		}
	}
	fc := pickChain(lis, req)
	if fc == nil {
		return "no filter chain"
	}
	for _, f := range fc.Filters {
		tp := &tcpproxy.TcpProxy{}
		if f.GetTypedConfig().UnmarshalTo(tp) == nil {
			return tp.GetCluster()
		}
		m := &hcm.HttpConnectionManager{}
		if f.GetTypedConfig().UnmarshalTo(m) == nil {
			return walkRoutes(res, m.GetRds().GetRouteConfigName(), req.host)
		}
	}
	return "no terminal filter"
}

// pickChain chooses as Envoy's filter chain match does, in its order: destination IP (longest
// prefix), then server name, then the default chain.
func pickChain(l *listener.Listener, req walkReq) *listener.FilterChain {
	var best *listener.FilterChain
	bestBits := -1
	for _, fc := range l.FilterChains {
		m := fc.GetFilterChainMatch()
		bits := 0
		if len(m.GetPrefixRanges()) > 0 {
			bits = -1
			for _, pr := range m.GetPrefixRanges() {
				p, err := netip.ParsePrefix(pr.AddressPrefix + "/" + itoa(pr.GetPrefixLen().GetValue()))
				if err == nil && req.ip.IsValid() && p.Contains(req.ip) && p.Bits() > bits {
					bits = p.Bits() + 1
				}
			}
			if bits < 0 {
				continue
			}
		}
		if sn := m.GetServerNames(); len(sn) > 0 {
			if req.kind != "tls" || !sniMatches(sn, req.host) {
				continue
			}
			bits += 1000 // server names are more specific than none at the same IP level
		} else if req.kind == "tls" && len(m.GetPrefixRanges()) == 0 && hasHTTP(fc) {
			continue // TLS is not for the HTTP connection manager
		}
		if bits > bestBits {
			best, bestBits = fc, bits
		}
	}
	if best == nil {
		return l.DefaultFilterChain
	}
	return best
}

func hasHTTP(fc *listener.FilterChain) bool {
	for _, f := range fc.Filters {
		if f.GetTypedConfig().MessageIs(&hcm.HttpConnectionManager{}) {
			return true
		}
	}
	return false
}

func sniMatches(names []string, sni string) bool {
	for _, n := range names {
		if n == sni || (strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:])) {
			return true
		}
	}
	return false
}

// walkRoutes finds the virtual host as Envoy does (exact, longest suffix wildcard, "*") and the
// first route that matches GET / with no headers.
func walkRoutes(res Resources, name, host string) string {
	var rc *routev3.RouteConfiguration
	for _, r := range res[resource.RouteType] {
		if c := r.(*routev3.RouteConfiguration); c.Name == name {
			rc = c
		}
	}
	if rc == nil {
		return "no route configuration " + name
	}
	var vh *routev3.VirtualHost
	best := -1
	for _, v := range rc.VirtualHosts {
		for _, d := range v.Domains {
			score := -1
			switch {
			case d == host:
				score = 1 << 20
			case d == "*":
				score = 0
			case strings.HasPrefix(d, "*") && strings.HasSuffix(host, d[1:]) && len(host) > len(d)-1:
				score = len(d)
			}
			if score > best {
				vh, best = v, score
			}
		}
	}
	if vh == nil {
		return "no virtual host"
	}
	for _, r := range vh.Routes {
		m := r.GetMatch()
		if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 {
			continue
		}
		if p, ok := m.GetPathSpecifier().(*routev3.RouteMatch_Prefix); !ok || p.Prefix != "/" && p.Prefix != "" {
			continue
		}
		switch {
		case r.GetDirectResponse() != nil:
			return "direct response"
		case r.GetRedirect() != nil:
			return "redirect"
		}
		if c := r.GetRoute().GetCluster(); c != "" {
			return c
		}
		var heaviest string
		var w uint32
		for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
			if wc.GetWeight().GetValue() > w {
				heaviest, w = wc.Name, wc.GetWeight().GetValue()
			}
		}
		return heaviest
	}
	return "no route matches /"
}
