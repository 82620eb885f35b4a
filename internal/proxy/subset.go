package proxy

import (
	"errors"
	"fmt"

	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// errNoSubset marks a route to a subset no DestinationRule of the service defines.
var errNoSubset = errors.New("subset not defined")

// subsetKey names one subset of one service port of a snapshot.
type subsetKey struct {
	port *registry.Port
	name string
}

// subsetEntry is a subset's port (its endpoints and cluster name) and its route, built once per
// snapshot the first time the subset is used.
type subsetEntry struct {
	port  *registry.Port
	route *route
}

// subsetRoute returns the route to the subset called name of svc's port: the endpoints whose
// labels carry every label of the subset, under the rule's traffic policy overridden by the
// subset's (policy.Applied already merged it, as Istio's MergeSubsetTrafficPolicy), in a
// cluster named outbound|PORT|SUBSET|HOST. It fails with errNoSubset when the DestinationRule
// that applies to the port defines no such subset, or when none applies.
func (t *table) subsetRoute(svc *registry.Service, port *registry.Port, name string, p *Proxy) (*subsetEntry, error) {
	key := subsetKey{port: port, name: name}
	if v, ok := t.subsets.Load(key); ok {
		return v.(*subsetEntry), nil
	}
	applied, ok := t.policies.For(svc, port.Number, policy.Proxy{Namespace: p.cfg.Namespace, Labels: p.cfg.Labels})
	var sub *policy.Subset
	if ok && applied != nil {
		sub = applied.Subset(name)
	}
	if sub == nil {
		return nil, fmt.Errorf("%w: no DestinationRule for %s defines subset %q", errNoSubset, svc.Host, name)
	}
	sp := subsetPort(port, svc.Host, sub)
	// The subset's own policy stands in for the rule's; the rest of the rule (its sources, why it
	// applies) is the same.
	sa := *applied
	sa.Traffic = sub.Traffic
	e := &subsetEntry{port: sp, route: newRoute(svc, sp, p, &sa)}
	v, _ := t.subsets.LoadOrStore(key, e)
	return v.(*subsetEntry), nil
}

// subsetPort is port narrowed to the endpoints a subset selects, in the subset's cluster.
func subsetPort(port *registry.Port, host string, sub *policy.Subset) *registry.Port {
	sp := *port
	sp.Cluster = fmt.Sprintf("outbound|%d|%s|%s", port.Number, sub.Name, host)
	sp.Endpoints = nil
	for _, ep := range port.Endpoints {
		if labelsMatch(ep.Labels, sub.Labels) {
			sp.Endpoints = append(sp.Endpoints, ep)
		}
	}
	return &sp
}

// labelsMatch reports whether have carries every label of want.
func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
