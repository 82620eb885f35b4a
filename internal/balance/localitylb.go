package balance

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// placement is where NewPolicyPicker puts one target: its priority, its effective weight, and
// whether it can be picked at all.
type placement struct {
	priority int
	weight   uint64
	keep     bool
}

// failoverNetworkPenalty is NetworkPenalty for LocalityFailover, whose priorities reach 4.
const failoverNetworkPenalty = 5

// distributeScale keeps precision when a distribute rule's locality share is spread over the
// locality's endpoint weights, as integers.
const distributeScale = 1 << 20

// Labels failoverPriority reads from an endpoint's locality and network when it has no such label,
// as Istio does.
const (
	labelNetwork = "topology.istio.io/network"
	labelRegion  = "topology.kubernetes.io/region"
	labelZone    = "topology.kubernetes.io/zone"
	labelSubzone = "topology.istio.io/subzone"
)

// place ranks every target for the locality mode.
func place(targets []Target, c Client, cfg LocalityConfig) []placement {
	out := make([]placement, len(targets))
	for i, t := range targets {
		out[i] = placement{weight: uint64(max(t.Weight, 1)), keep: true}
		loc := ParseLocality(t.Locality)
		switch cfg.Mode {
		case LocalityDefault:
			out[i].priority = rank(c.Locality, c.Network, loc, t.Network)
		case LocalityFailover:
			out[i].priority = failoverRank(c, loc, t.Network, cfg.Failover)
		case LocalityLabels:
			out[i].priority = labelRank(c, t, cfg.Labels)
			if len(cfg.Failover) > 0 {
				// failoverPriority with failover: region failover orders each label level, as
				// Istio's applyLocalityFailover does after applyFailoverPriorities (5 levels each).
				out[i].priority = out[i].priority*5 + regionFailoverRank(c.Locality, loc, cfg.Failover)
			}
		}
	}
	if cfg.Mode == LocalityDistribute {
		distribute(targets, c, cfg.Distribute, out)
	}
	return out
}

// failoverRank is Istio's applyLocalityFailover plus meshentry's network rule: another network
// ranks after every locality of the proxy's own.
func failoverRank(c Client, ep Locality, epNetwork string, failover []RegionFailover) int {
	p := regionFailoverRank(c.Locality, ep, failover)
	if otherNetwork(c.Network, epNetwork) {
		p += failoverNetworkPenalty
	}
	return p
}

// regionFailoverRank is Istio's applyLocalityFailover: 0 same subzone, 1 same zone, 2 same
// region, 3 another region; when a failover entry names the proxy's region, the regions other
// than its "to" drop to 4.
func regionFailoverRank(self, ep Locality, failover []RegionFailover) int {
	p := Priority(self, ep)
	if p != 3 {
		return p
	}
	for _, f := range failover {
		if f.From == self.Region {
			if f.To != ep.Region {
				p = 4
			}
			break
		}
	}
	return p
}

// labelRank is failoverPriority: with N labels, an endpoint that matches the first k ranks N-k,
// a label counting only while every label before it matched. "key" compares the endpoint's value
// with the proxy's (a label neither has compares equal, as Istio's map lookups do); "key=value"
// compares the endpoint's with value.
func labelRank(c Client, t Target, labels []string) int {
	matched := 0
	for _, l := range labels {
		key, want, fixed := strings.Cut(l, "=")
		if !fixed {
			want = clientLabel(c, key)
		}
		if endpointLabel(t, key) != want {
			break
		}
		matched++
	}
	return len(labels) - matched
}

func endpointLabel(t Target, key string) string {
	if v, ok := t.Labels[key]; ok {
		return v
	}
	return topologyLabel(key, ParseLocality(t.Locality), t.Network)
}

func clientLabel(c Client, key string) string {
	if v, ok := c.Labels[key]; ok {
		return v
	}
	return topologyLabel(key, c.Locality, c.Network)
}

func topologyLabel(key string, l Locality, network string) string {
	switch key {
	case labelNetwork:
		return network
	case labelRegion:
		return l.Region
	case labelZone:
		return l.Zone
	case labelSubzone:
		return l.Subzone
	}
	return ""
}

// distribute is Istio's applyLocalityWeights: the first rule whose from matches the proxy applies;
// each "to" entry claims the localities it matches that no earlier entry claimed, and its weight
// is split between them by their endpoints' total weight (rounded up per locality, as Istio does);
// within a locality the endpoint weights split its share. Localities no entry claims get nothing.
// Without a matching rule every endpoint stays, as in Istio. Exact "to" entries are tried before
// wildcard ones, a fixed order where Istio's follows Go's map order.
func distribute(targets []Target, c Client, rules []Distribution, out []placement) {
	i := slices.IndexFunc(rules, func(r Distribution) bool { return localityMatch(c.Locality, r.From) })
	if i < 0 {
		return
	}
	to := slices.Clone(rules[i].To)
	slices.SortStableFunc(to, func(a, b LocalityWeight) int {
		return cmp.Compare(strings.Count(a.Locality, "*"), strings.Count(b.Locality, "*"))
	})
	claim := make([]int, len(targets)) // index into to, -1 when unclaimed
	localityTotal := map[string]uint64{}
	entryTotal := make([]uint64, len(to))
	for ti, t := range targets {
		loc := ParseLocality(t.Locality)
		claim[ti] = slices.IndexFunc(to, func(w LocalityWeight) bool { return localityMatch(loc, w.Locality) })
		if claim[ti] >= 0 {
			localityTotal[loc.String()] += out[ti].weight
			entryTotal[claim[ti]] += out[ti].weight
		}
	}
	for ti, t := range targets {
		k := claim[ti]
		if k < 0 || to[k].Weight == 0 {
			out[ti].keep = false
			continue
		}
		own := float64(localityTotal[ParseLocality(t.Locality).String()])
		share := math.Ceil(own * float64(to[k].Weight) / float64(entryTotal[k]))
		w := share * float64(out[ti].weight) / own * distributeScale
		out[ti].weight = max(1, uint64(math.Round(w)))
		out[ti].priority = 0
	}
}

// localityMatch is Istio's util.LocalityMatch: each part of rule is "*", equal, or (zone and
// subzone) empty, which matches anything.
func localityMatch(l Locality, rule string) bool {
	r := ParseLocality(rule)
	return (r.Region == "*" || r.Region == l.Region) &&
		(r.Zone == "*" || r.Zone == "" || r.Zone == l.Zone) &&
		(r.Subzone == "*" || r.Subzone == "" || r.Subzone == l.Subzone)
}
