package validate

import (
	"sort"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// destinationRule warns about a rule whose host no visible ServiceEntry declares (Istio's
// UnknownDestinationRuleHost), and about port-level settings for ports those entries do not have.
func (a *analysis) destinationRule(d *config.Document, dr *networking.DestinationRule) {
	if dr.Host == "" {
		return
	}
	if msg := a.undeclared(dr.Host, d.Namespace); msg != "" {
		a.warn(d, CodeUnknownDRHost, "spec.host", "%s, so this DestinationRule applies to nothing", msg)
		return
	}
	ports := a.portsOf(dr.Host, d.Namespace)
	a.undeclaredPortLevels(d, "spec.trafficPolicy.portLevelSettings", dr.Host, dr.TrafficPolicy, ports)
	for i, s := range dr.Subsets {
		a.undeclaredPortLevels(d, at("spec.subsets", i, ".trafficPolicy.portLevelSettings"), dr.Host, s.GetTrafficPolicy(), ports)
	}
}

// portsOf collects the port numbers of every ServiceEntry host visible from ns that ref covers.
func (a *analysis) portsOf(ref, ns string) map[uint32]bool {
	ref = expandHost(ref, ns)
	ports := map[uint32]bool{}
	for _, h := range a.hosts {
		if !h.audience.includes(ns) || !hostsOverlap(ref, h.host) {
			continue
		}
		for _, p := range h.doc.ServiceEntry().Ports {
			if p != nil {
				ports[p.Number] = true
			}
		}
	}
	return ports
}

func (a *analysis) undeclaredPortLevels(d *config.Document, f, host string, tp *networking.TrafficPolicy, ports map[uint32]bool) {
	for i, pl := range tp.GetPortLevelSettings() {
		n := pl.GetPort().GetNumber()
		if n == 0 || ports[n] {
			continue
		}
		a.warn(d, CodePortLevelUndeclared, at(f, i, ".port.number"),
			"port %d is not a port of any ServiceEntry visible to namespace %q that declares %s (ports %s), so these settings never apply",
			n, d.Namespace, host, numberList(ports))
	}
}

func numberList(ports map[uint32]bool) string {
	ns := make([]int, 0, len(ports))
	for p := range ports {
		ns = append(ns, int(p))
	}
	sort.Ints(ns)
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strconv.Itoa(n)
	}
	return strings.Join(out, ", ")
}

// undefinedSubsets is Istio's VirtualService DestinationRuleAnalyzer: a route destination that
// names a subset no DestinationRule for that host defines (host names compared fully expanded,
// as Istio compares them) has no cluster to go to.
func (a *analysis) undefinedSubsets(docs []*config.Document) {
	defined := map[[2]string]bool{}
	for _, d := range docs {
		if dr := d.DestinationRule(); dr != nil {
			for _, s := range dr.Subsets {
				if s != nil {
					defined[[2]string{expandHost(dr.Host, d.Namespace), s.Name}] = true
				}
			}
		}
	}
	for _, d := range docs {
		vs := d.VirtualService()
		if vs == nil {
			continue
		}
		for _, ref := range routeDestinations(vs) {
			if ref.subset == "" || ref.host == "" || defined[[2]string{expandHost(ref.host, d.Namespace), ref.subset}] {
				continue
			}
			a.warn(d, CodeReferencedHostNotFound, strings.TrimSuffix(ref.field, ".host")+".subset",
				"no DestinationRule for host %s defines subset %q, so requests on this route find no cluster (503)", ref.host, ref.subset)
		}
	}
}

// expandHost is a host as Istio resolves it: lower case, a short name as name.namespace.svc.cluster.local.
func expandHost(h, ns string) string {
	h = normalHost(h)
	if h != "" && h != "*" && !strings.Contains(h, ".") {
		h += "." + ns + ".svc.cluster.local"
	}
	return h
}

// drGroupKey is what Istio merges DestinationRules by: one namespace, one host, one exportTo set
// and one workloadSelector.
type drGroupKey struct {
	namespace, host, exportTo, selector string
}

// mergedDestinationRules warns where Istio's merge of several DestinationRules for one host in one
// namespace drops part of a later rule: its top-level traffic policy when an older rule has one,
// and a subset whose name an older rule already uses.
func (a *analysis) mergedDestinationRules(docs []*config.Document) {
	groups := map[drGroupKey][]*config.Document{}
	var keys []drGroupKey
	for _, d := range docs {
		dr := d.DestinationRule()
		if dr == nil || dr.Host == "" {
			continue
		}
		host := expandHost(dr.Host, d.Namespace)
		k := drGroupKey{namespace: d.Namespace, host: host, exportTo: exportKey(d, dr)}
		if sel := dr.GetWorkloadSelector(); sel != nil {
			k.selector = "selector:" + labelKey(sel.MatchLabels)
		}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], d)
	}
	for _, k := range keys {
		g := groups[k]
		olderFirst(g)
		var policyFrom *config.Document
		subsetFrom := map[string]*config.Document{}
		for _, d := range g {
			dr := d.DestinationRule()
			if dr.TrafficPolicy != nil {
				if policyFrom != nil {
					a.warn(d, CodeDestinationRuleMerge, "spec.trafficPolicy",
						"this traffic policy is ignored: DestinationRules for host %s in namespace %q are merged, and the older %s (%s) already sets one",
						k.host, k.namespace, qualifiedName(policyFrom), position(policyFrom, "spec.trafficPolicy"))
				} else {
					policyFrom = d
				}
			}
			for i, s := range dr.Subsets {
				if s == nil {
					continue
				}
				if o, dup := subsetFrom[s.Name]; dup && o != d {
					a.warn(d, CodeDestinationRuleMerge, at("spec.subsets", i, ".name"),
						"subset %q is ignored: DestinationRules for host %s in namespace %q are merged, and the older %s (%s) already defines it",
						s.Name, k.host, k.namespace, qualifiedName(o), position(o, "spec.subsets"))
				} else if !dup {
					subsetFrom[s.Name] = d
				}
			}
		}
	}
}

// exportKey spells a rule's exportTo as a set, "." as its namespace; a rule with a
// workloadSelector is exported to its namespace only, whatever it says.
func exportKey(d *config.Document, dr *networking.DestinationRule) string {
	if dr.GetWorkloadSelector() != nil {
		return "."
	}
	set := map[string]bool{}
	for _, e := range dr.ExportTo {
		set[e] = true
	}
	return strings.Join(sortedKeys(set), ",")
}

func labelKey(m map[string]string) string {
	keys := sortedKeys(m)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}
