package route

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// Table is the compiled routing of one proxy for one snapshot. It is immutable and safe for any
// number of goroutines.
type Table struct {
	proxy    Proxy
	first    string
	gateways map[string]*gwTable
	errs     []error
}

// gwTable is what one gateway (or "mesh") routes.
type gwTable struct {
	http map[uint32]*hostTable
	tls  []*l4Rule
	tcp  []*l4Rule
}

// hostTable finds a request's virtual host by Host, as Envoy does: exact, then longest wildcard.
type hostTable struct {
	exact map[string]*vhost
	wild  []*vhost
}

// vhost is one host's rules on one port, from one VirtualService (several, merged, at a gateway).
type vhost struct {
	domain   string
	rules    []vrule
	notFound *HTTPRoute
}

type vrule struct {
	rule *httpRule
	out  *HTTPRoute
}

// Build compiles the VirtualServices that bind proxy p in snap. Rules that fail to compile (which
// validation reports first) are left out and listed by Errors.
func Build(snap *registry.Snapshot, p Proxy) *Table {
	b := &builder{snap: snap, p: p}
	t := &Table{proxy: p, gateways: map[string]*gwTable{}}
	gws := p.Gateways
	if len(gws) == 0 {
		gws = []string{Mesh}
	}
	t.first = gws[0]
	docs := b.virtualServices()
	for _, gw := range gws {
		gt := &gwTable{http: map[uint32]*hostTable{}}
		for _, doc := range docs {
			if !boundTo(doc, gw) {
				continue
			}
			t.errs = append(t.errs, b.addHTTP(gt, doc, gw)...)
			t.errs = append(t.errs, b.addL4(gt, doc, gw)...)
		}
		for _, ht := range gt.http {
			sort.SliceStable(ht.wild, func(i, j int) bool { return len(ht.wild[i].domain) > len(ht.wild[j].domain) })
		}
		t.gateways[gw] = gt
	}
	return t
}

// Errors lists the rules Build left out, with the VirtualService and field.
func (t *Table) Errors() []error { return t.errs }

// virtualServices returns the VirtualServices the proxy may see, oldest first.
func (b *builder) virtualServices() []*config.Document {
	var out []*config.Document
	for _, d := range b.snap.Documents {
		if vs := d.VirtualService(); vs != nil && visibleTo(vs.ExportTo, d.Namespace, b.p.Namespace) {
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].OlderThan(out[j]) })
	return out
}

// boundTo reports whether a VirtualService applies at gateway gw ("mesh" when it names none).
func boundTo(doc *config.Document, gw string) bool {
	gws := doc.VirtualService().Gateways
	if len(gws) == 0 {
		return gw == Mesh
	}
	for _, g := range gws {
		if ResolveGateway(g, doc.Namespace) == gw {
			return true
		}
	}
	return false
}

// hosts returns a VirtualService's hosts completed against its namespace.
func hosts(doc *config.Document) []string {
	vs := doc.VirtualService()
	out := make([]string, 0, len(vs.Hosts))
	for _, h := range vs.Hosts {
		out = append(out, ResolveHost(h, doc.Namespace))
	}
	return out
}

// addHTTP compiles a VirtualService's http rules and files them under each port and host.
func (b *builder) addHTTP(gt *gwTable, doc *config.Document, gw string) []error {
	vs := doc.VirtualService()
	if len(vs.Http) == 0 {
		return nil
	}
	var errs []error
	var rules []*httpRule
	for i, r := range vs.Http {
		rule, err := compileHTTPRule(doc, i, r, &b.p, gw)
		if err != nil {
			errs = append(errs, fmt.Errorf("VirtualService %s/%s: %w", doc.Namespace, doc.Name, err))
			continue
		}
		rules = append(rules, rule)
	}
	for port, hs := range b.httpPorts(hosts(doc), gw) {
		vrs := make([]vrule, 0, len(rules))
		for _, rule := range rules {
			out, err := b.outcome(doc, rule, port)
			if err != nil {
				errs = append(errs, fmt.Errorf("VirtualService %s/%s: http[%d]: %w", doc.Namespace, doc.Name, rule.index, err))
				continue
			}
			vrs = append(vrs, vrule{rule: rule, out: out})
		}
		nf := &HTTPRoute{VirtualService: doc.Namespace + "/" + doc.Name, Doc: doc, Index: -1, NotFound: true}
		for _, h := range hs {
			gt.addVhost(port, h, vrs, nf, gw != Mesh)
		}
	}
	return errs
}

// addVhost files rules for domain h on port; a later VirtualService for the same domain is
// dropped at a sidecar (the oldest wins) and appended at a gateway (Istio merges them there).
func (gt *gwTable) addVhost(port uint32, h string, vrs []vrule, nf *HTTPRoute, merge bool) {
	ht := gt.http[port]
	if ht == nil {
		ht = &hostTable{exact: map[string]*vhost{}}
		gt.http[port] = ht
	}
	if v := ht.find(h); v != nil {
		if merge {
			v.rules = append(v.rules, vrs...)
		}
		return
	}
	v := &vhost{domain: h, rules: append([]vrule(nil), vrs...), notFound: nf}
	if strings.HasPrefix(h, "*") {
		ht.wild = append(ht.wild, v)
	} else {
		ht.exact[h] = v
	}
}

// find returns the vhost whose domain is exactly h.
func (ht *hostTable) find(h string) *vhost {
	if v := ht.exact[h]; v != nil {
		return v
	}
	for _, v := range ht.wild {
		if v.domain == h {
			return v
		}
	}
	return nil
}

// lookup returns the vhost that takes a request for host: exact, then the longest wildcard.
func (ht *hostTable) lookup(host string) *vhost {
	if v := ht.exact[host]; v != nil {
		return v
	}
	for _, v := range ht.wild {
		if v.domain == "*" || (len(host) > len(v.domain)-1 && strings.HasSuffix(host, v.domain[1:])) {
			return v
		}
	}
	return nil
}

// httpPorts says on which ports each host of a VirtualService takes http requests. At a sidecar,
// a host takes the HTTP and auto ports of the services it covers, and port 80 when it covers
// none, as Istio does; at a gateway, every port of the gateway's servers that carries HTTP.
func (b *builder) httpPorts(hs []string, gw string) map[uint32][]string {
	out := map[uint32][]string{}
	if gw != Mesh {
		for _, port := range b.gatewayHTTPPorts(gw) {
			out[port] = hs
		}
		return out
	}
	for _, h := range hs {
		seen := map[uint32]bool{}
		covers := false
		for _, svc := range b.snap.Services {
			if !svc.VisibleTo(b.p.Namespace) || !hostsOverlap(h, svc.Host) {
				continue
			}
			covers = true
			for _, port := range svc.Ports {
				if port.Family&(registry.FamilyHTTP|registry.FamilyAuto) != 0 && !seen[port.Number] {
					seen[port.Number] = true
					out[port.Number] = append(out[port.Number], h)
				}
			}
		}
		if !covers {
			out[80] = append(out[80], h)
		}
	}
	return out
}

// gatewayHTTPPorts lists the ports of Gateway ns/name whose servers carry HTTP (plaintext or
// terminated TLS).
func (b *builder) gatewayHTTPPorts(gw string) []uint32 {
	var out []uint32
	for _, d := range b.snap.Documents {
		g := d.Gateway()
		if g == nil || d.Namespace+"/"+d.Name != gw {
			continue
		}
		for _, s := range g.Servers {
			fam := registry.ProtocolFamily(s.GetPort().GetProtocol())
			terminated := fam == registry.FamilyTLS && s.GetTls().GetMode() != networking.ServerTLSSettings_PASSTHROUGH &&
				s.GetTls().GetMode() != networking.ServerTLSSettings_AUTO_PASSTHROUGH
			if fam == registry.FamilyHTTP || terminated {
				out = append(out, s.GetPort().GetNumber())
			}
		}
	}
	return out
}
