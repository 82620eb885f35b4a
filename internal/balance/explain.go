package balance

import "slices"

// Ranked is one target as the explain command shows it.
type Ranked struct {
	// Index is the target's position in the slice given to NewPicker.
	Index int
	// Key, Locality and Network are copied from the Target so the CLI needs nothing else to print.
	Key      string
	Locality string
	Network  string
	// Priority is the failover level, 0 best; NetworkPenalty is added for another network.
	Priority int
	// Weight is the endpoint's weight, 0 showing as the 1 it counts as; Share has the effect of a
	// distribute rule on top.
	Weight uint32
	// Share is the percentage of its priority's traffic this target gets while that priority is in
	// use: 0 when ejected, and the configured split when the whole priority is ejected (panic mode).
	Share float64
	// Ejected says the target is currently ejected by passive health checking.
	Ejected bool
	// Active says this target's priority is the one Pick currently draws from.
	Active bool
	// Reason says in words why the target has its priority.
	Reason string
}

// Explain lists every target in the order the proxy prefers them (priority, then weight descending,
// then input order) with the numbers behind that choice, reading health once so the list is
// consistent.
func (p *Picker) Explain() []Ranked {
	c := clock{h: p.health}
	ejected := make([]bool, len(p.entries))
	for i, e := range p.entries {
		ejected[i] = p.health != nil && c.ejectedAt(e.state)
	}
	// The active priority is the first with a healthy target, else the first (panic mode), as in Pick.
	active := -1
	for _, g := range p.groups {
		for _, i := range g.members {
			if !ejected[i] {
				active = g.priority
				break
			}
		}
		if active >= 0 {
			break
		}
	}
	if active < 0 && len(p.groups) > 0 {
		active = p.groups[0].priority
	}

	out := make([]Ranked, 0, len(p.entries))
	for _, g := range p.groups {
		var healthy uint64
		for _, i := range g.members {
			if !ejected[i] {
				healthy += p.entries[i].weight
			}
		}
		for _, i := range g.members {
			e, t := p.entries[i], p.targets[i]
			var share float64
			switch {
			case healthy == 0:
				share = 100 * float64(e.weight) / float64(g.total)
			case !ejected[i]:
				share = 100 * float64(e.weight) / float64(healthy)
			}
			out = append(out, Ranked{
				Index:    i,
				Key:      t.Key,
				Locality: t.Locality,
				Network:  t.Network,
				Priority: e.priority,
				Weight:   max(t.Weight, 1),
				Share:    share,
				Ejected:  ejected[i],
				Active:   g.priority == active,
				Reason:   p.reason(t),
			})
		}
	}
	// Targets a distribute rule sends nothing to are in no priority; list them last, with no share.
	for i, e := range p.entries {
		if slices.Contains(p.order, i) {
			continue
		}
		t := p.targets[i]
		out = append(out, Ranked{
			Index: i, Key: t.Key, Locality: t.Locality, Network: t.Network, Priority: e.priority,
			Weight: max(t.Weight, 1), Ejected: ejected[i], Reason: "distribute sends nothing to this locality",
		})
	}
	return out
}

// reason says why t has its priority under the picker's locality mode.
func (p *Picker) reason(t Target) string {
	switch p.mode {
	case LocalityOff:
		return "locality load balancing off"
	case LocalityDistribute:
		return "distribute: weight set by locality share"
	case LocalityLabels:
		return "failoverPriority: ranked by matching labels"
	}
	return reason(p.client.Locality, p.client.Network, ParseLocality(t.Locality), t.Network)
}
