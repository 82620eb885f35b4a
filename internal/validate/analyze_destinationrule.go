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
	if !strings.Contains(ref, ".") && ref != "*" {
		ref = ref + "." + ns + ".svc.cluster.local"
	}
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
		host := normalHost(dr.Host)
		if !strings.Contains(host, ".") && host != "*" {
			host += "." + d.Namespace + ".svc.cluster.local"
		}
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
