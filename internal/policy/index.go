package policy

import (
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// clusterDomain is the suffix Istio gives a short DestinationRule host (ResolveShortnameToFQDN).
const clusterDomain = "svc.cluster.local"

// rule is one consolidated DestinationRule: the documents Istio merges for one host in one pool.
type rule struct {
	host      string
	namespace string
	selector  map[string]string
	// exportTo is the rule's exportTo as a set; empty means the mesh default, every namespace.
	exportTo map[string]bool
	traffic  *networking.TrafficPolicy // the first non-nil top-level policy; read only
	subsets  []*networking.Subset      // read only
	sources  []Source
	root     bool

	// byPort holds the applied policy for each port some portLevelSettings names; other ports
	// share def. Both are filled once, after merging, by finish.
	byPort map[uint32]*[3]Applied
	def    *[3]Applied
}

// pool is one of Istio's consolidatedDestRules: rules keyed by exact host and by wildcard host.
type pool struct {
	specific map[string][]*rule
	wildcard map[string][]*rule
	// wildKeys are wildcard's keys, longest (most specific) first, so a lookup stops at the first
	// that covers the host.
	wildKeys []string
}

func newPool() *pool {
	return &pool{specific: map[string][]*rule{}, wildcard: map[string][]*rule{}}
}

// match is Istio's MostSpecificHostMatch: the exact host first, else the longest wildcard that
// covers host. A wildcard service host looks only among wildcard rules.
func (p *pool) match(host string) []*rule {
	if p == nil {
		return nil
	}
	if strings.HasPrefix(host, "*") {
		if rs, ok := p.wildcard[host]; ok {
			return rs
		}
		host = host[1:]
	} else if rs, ok := p.specific[host]; ok {
		return rs
	}
	for _, h := range p.wildKeys {
		if strings.HasSuffix(host, h[1:]) {
			return p.wildcard[h]
		}
	}
	return nil
}

// sortKeys orders the wildcard hosts once the pool is complete.
func (p *pool) sortKeys() {
	p.wildKeys = p.wildKeys[:0]
	for h := range p.wildcard {
		p.wildKeys = append(p.wildKeys, h)
	}
	sort.Slice(p.wildKeys, func(i, j int) bool {
		a, b := p.wildKeys[i], p.wildKeys[j]
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	})
}

// Build indexes the DestinationRules among docs (other kinds are ignored) with root as the mesh
// root namespace ("" means istio-system). Pass the documents validation accepted.
func Build(docs []*config.Document, root string) *Index {
	if root == "" {
		root = DefaultRootNamespace
	}
	var drs []*config.Document
	for _, d := range docs {
		// A rule without a host never passes validation; skipping it keeps Build total.
		if d != nil && d.DestinationRule().GetHost() != "" {
			drs = append(drs, d)
		}
	}
	// Istio sorts rules with a workloadSelector first, then by age, so that the oldest rule's
	// traffic policy wins a merge.
	sort.SliceStable(drs, func(i, j int) bool {
		si, sj := drs[i].DestinationRule().GetWorkloadSelector() != nil, drs[j].DestinationRule().GetWorkloadSelector() != nil
		if si != sj {
			return si
		}
		return drs[i].OlderThan(drs[j])
	})
	x := &Index{root: root, local: map[string]*pool{}, exported: map[string]*pool{}, rootLocal: newPool()}
	for _, d := range drs {
		x.add(d)
	}
	for _, pools := range []map[string]*pool{x.local, x.exported, {"": x.rootLocal}} {
		for _, p := range pools {
			p.sortKeys()
			for _, m := range []map[string][]*rule{p.specific, p.wildcard} {
				for _, rs := range m {
					for _, r := range rs {
						r.finish()
					}
				}
			}
		}
	}
	return x
}

// add places one document in the pools Istio's setDestinationRules puts it in.
func (x *Index) add(d *config.Document) {
	dr := d.DestinationRule()
	ns := d.Namespace
	host := fqdn(dr.Host, ns)
	exportTo := map[string]bool{}
	if dr.GetWorkloadSelector() != nil {
		// A rule with a workloadSelector is never exported beyond its namespace.
		exportTo["."] = true
	} else {
		for _, e := range dr.ExportTo {
			exportTo[e] = true
		}
	}
	if len(exportTo) == 0 || exportTo["*"] || exportTo["."] || exportTo[ns] {
		x.local[ns] = orNew(x.local[ns])
		merge(x.local[ns], d, host, exportTo, ns == x.root)
	}
	privateOnly := len(exportTo) == 1 && (exportTo["."] || exportTo[ns])
	switch {
	case !privateOnly:
		x.exported[ns] = orNew(x.exported[ns])
		merge(x.exported[ns], d, host, exportTo, ns == x.root)
	case ns == x.root:
		merge(x.rootLocal, d, host, exportTo, true)
	}
}

func orNew(p *pool) *pool {
	if p == nil {
		return newPool()
	}
	return p
}

// fqdn expands a short host as Kubernetes would, name.namespace.svc.cluster.local.
func fqdn(h, ns string) string {
	h = registry.NormalizeHost(h)
	if h == "*" || strings.Contains(h, ".") {
		return h
	}
	return h + "." + ns + "." + clusterDomain
}

// merge is Istio's mergeDestinationRule with enhanced merging (its default): a rule joins an
// existing one for the same host when its exportTo equals or contains the existing one's and their
// workloadSelectors do not differ; joining adds the subsets not yet named, and the traffic policy
// when the existing rule has none.
func merge(p *pool, d *config.Document, host string, exportTo map[string]bool, root bool) {
	dr := d.DestinationRule()
	m := p.specific
	if strings.HasPrefix(host, "*") {
		m = p.wildcard
	}
	sel := dr.GetWorkloadSelector().GetMatchLabels()
	withSel := dr.GetWorkloadSelector() != nil
	separate := true
	for _, r := range m[host] {
		// Step for step as Istio's loop, so that its quirks carry over: the last rule looked at
		// decides whether this one is also kept alone, and a rule without selector whose exportTo
		// equals a selector rule's is folded into it and not kept alone.
		switch {
		case sameSet(exportTo, r.exportTo):
			separate = false
		case len(r.exportTo) > 0 && superset(exportTo, r.exportTo):
			separate = true
		default:
			separate = true
			continue
		}
		rWithSel := r.selector != nil
		bothWith, selMatch := withSel && rWithSel, sameLabels(sel, r.selector)
		if bothWith && !selMatch {
			separate = true
			continue
		}
		if !withSel && !rWithSel || bothWith && selMatch {
			separate = false
		}
		r.absorb(d)
	}
	if separate {
		r := &rule{host: host, namespace: d.Namespace, exportTo: exportTo, traffic: dr.TrafficPolicy, root: root}
		if dr.GetWorkloadSelector() != nil {
			r.selector = sel
			if r.selector == nil {
				r.selector = map[string]string{}
			}
		}
		r.subsets = append(r.subsets, dr.Subsets...)
		r.sources = []Source{sourceOf(d)}
		m[host] = append(m[host], r)
	}
}

// absorb merges a later document into the rule: new subset names are added, and its traffic policy
// is taken only when the rule has none yet.
func (r *rule) absorb(d *config.Document) {
	dr := d.DestinationRule()
	for _, s := range dr.Subsets {
		if s == nil || r.hasSubset(s.Name) {
			continue
		}
		r.subsets = append(r.subsets, s)
	}
	if r.traffic == nil {
		r.traffic = dr.TrafficPolicy
	}
	r.sources = append(r.sources, sourceOf(d))
}

func (r *rule) hasSubset(name string) bool {
	for _, s := range r.subsets {
		if s != nil && s.Name == name {
			return true
		}
	}
	return false
}

func sourceOf(d *config.Document) Source {
	return Source{Namespace: d.Namespace, Name: d.Name, File: d.File, Line: d.Line}
}

// exportedTo reports whether a rule found in another namespace is visible to namespace ns.
func (r *rule) exportedTo(ns string) bool {
	return len(r.exportTo) == 0 || r.exportTo["*"] || r.exportTo[ns]
}

// finish computes the applied policies once: for each port a portLevelSettings names, and for
// every other port; each in the three scopes so a lookup only picks a pointer.
func (r *rule) finish() {
	ports := map[uint32]bool{}
	portsNamed(r.traffic, ports)
	for _, s := range r.subsets {
		portsNamed(s.GetTrafficPolicy(), ports)
	}
	r.def = r.build(0)
	if len(ports) > 0 {
		r.byPort = make(map[uint32]*[3]Applied, len(ports))
		for p := range ports {
			r.byPort[p] = r.build(p)
		}
	}
}

func (r *rule) build(port uint32) *[3]Applied {
	base := Applied{
		Host: r.host, Namespace: r.namespace, Selector: r.selector, Sources: r.sources,
		exact: !strings.HasPrefix(r.host, "*"), root: r.root,
		Traffic: effective(nil, r.traffic, port),
	}
	if portLevel(r.traffic, port) != nil {
		base.PortLevel = port
	}
	for _, s := range r.subsets {
		if s == nil {
			continue
		}
		base.Subsets = append(base.Subsets, Subset{Name: s.Name, Labels: s.Labels, Traffic: effective(r.traffic, s.TrafficPolicy, port)})
	}
	var out [3]Applied
	for i, sc := range [...]Scope{ScopeProxy, ScopeService, ScopeRoot} {
		out[i] = base
		out[i].Scope = sc
	}
	return &out
}

// applied returns the precomputed policy for port as found in scope.
func (r *rule) applied(port uint32, scope Scope) *Applied {
	set := r.def
	if a, ok := r.byPort[port]; ok {
		set = a
	}
	return &set[scope-1]
}

func sameSet(a, b map[string]bool) bool {
	return len(a) == len(b) && superset(a, b)
}

func superset(a, b map[string]bool) bool {
	for k := range b {
		if !a[k] {
			return false
		}
	}
	return true
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
