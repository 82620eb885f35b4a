package route

import (
	"sort"
	"strings"

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
	b := &builder{snap: snap, p: p, known: map[string]bool{}, headerIDs: map[string]int{}}
	for _, d := range snap.Documents {
		if d.Gateway() != nil {
			b.known[d.Namespace+"/"+d.Name] = true
		}
	}
	t := &Table{proxy: p, gateways: map[string]*gwTable{}}
	gws := p.Gateways
	if len(gws) == 0 {
		gws = []string{Mesh}
	}
	t.first = gws[0]
	docs := b.virtualServices()
	for _, gw := range gws {
		gt := &gwTable{http: map[uint32]*hostTable{}}
		b.gateway = gw != Mesh
		var cvs []*compiledVS
		for _, doc := range docs {
			if !b.boundTo(doc, gw) {
				continue
			}
			cv, errs := b.compileVS(doc, gw)
			t.errs = append(t.errs, errs...)
			cvs = append(cvs, cv)
			t.errs = append(t.errs, b.addL4(gt, doc, gw)...)
		}
		if gw == Mesh {
			t.errs = append(t.errs, b.sidecarHTTP(gt, cvs)...)
		} else {
			t.errs = append(t.errs, b.gatewayHTTP(gt, cvs, gw)...)
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
		if vs := d.VirtualService(); vs != nil && visibleTo(vs.ExportTo, d.Namespace, b.p.Namespace) && b.imports(d) {
			out = append(out, d)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].OlderThan(out[j]) })
	return out
}

// imports reports whether the proxy's Import keeps a VirtualService: any of its hosts will do.
func (b *builder) imports(d *config.Document) bool {
	if b.p.Import == nil {
		return true
	}
	for _, h := range hosts(d) {
		if b.p.Import(d.Namespace, h) {
			return true
		}
	}
	return false
}

// boundTo reports whether a VirtualService applies at gateway gw ("mesh" when it names none).
func (b *builder) boundTo(doc *config.Document, gw string) bool {
	gws := doc.VirtualService().Gateways
	if len(gws) == 0 {
		return gw == Mesh
	}
	for _, g := range gws {
		if b.names(g, doc.Namespace, gw) {
			return true
		}
	}
	return false
}

// names reports whether a VirtualService in namespace ns that refers to gateway ref means gw.
// Istio reads a bare name in the VirtualService's namespace; when no Gateway of that name is
// there, meshentry takes the gateway of that name the proxy serves (Istio's own egress example
// names istio-system's gateway this way), and validate warns about the reference.
func (b *builder) names(ref, ns, gw string) bool {
	r := ResolveGateway(ref, ns)
	if r == gw {
		return true
	}
	if strings.ContainsAny(ref, "/.") || b.known[r] {
		return false
	}
	_, name, _ := strings.Cut(gw, "/")
	return name == ref
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
