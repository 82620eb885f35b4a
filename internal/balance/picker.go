package balance

import (
	"cmp"
	"math/rand/v2"
	"slices"
)

// Target is one endpoint of a service port as the picker sees it.
type Target struct {
	// Key identifies the endpoint across snapshots for health tracking, e.g. "10.0.0.1:8080" or
	// "unix:///var/run/app.sock".
	Key string
	// Weight is the endpoint's relative share within its priority; 0 counts as 1, as in Istio.
	Weight uint32
	// Locality is the endpoint's "region/zone/subzone".
	Locality string
	// Network is the endpoint's network; empty means the proxy's own.
	Network string
}

// Picker chooses among one service port's targets; it is built once per snapshot and then only read,
// so any number of goroutines may call Pick at once.
type Picker struct {
	targets []Target
	self    Locality
	network string
	health  *Health

	// entries parallels targets.
	entries []entry
	// order lists target indices in the order the proxy prefers them.
	order []int
	// groups holds one group per distinct priority, best first.
	groups []group
}

type entry struct {
	priority int
	weight   uint64
	state    *state
}

// group is one priority level with a cumulative weight table, so that with nothing ejected or
// excluded a pick is one random number and a binary search.
type group struct {
	priority int
	members  []int    // target indices, in preference order
	cum      []uint64 // cum[j] = sum of the weights of members[0..j]
	total    uint64
}

// NewPicker ranks targets against the proxy's locality and network once, so Pick only has to draw;
// the indices Pick returns refer to targets, and h may be nil to ignore health.
func NewPicker(targets []Target, self Locality, network string, h *Health) *Picker {
	p := &Picker{
		targets: slices.Clone(targets),
		self:    self,
		network: network,
		health:  h,
		entries: make([]entry, len(targets)),
		order:   make([]int, len(targets)),
	}
	for i, t := range targets {
		e := &p.entries[i]
		e.priority = rank(self, network, ParseLocality(t.Locality), t.Network)
		e.weight = uint64(max(t.Weight, 1))
		if h != nil {
			e.state = h.pin(t.Key)
		}
		p.order[i] = i
	}
	slices.SortStableFunc(p.order, func(a, b int) int {
		ea, eb := &p.entries[a], &p.entries[b]
		if c := cmp.Compare(ea.priority, eb.priority); c != 0 {
			return c
		}
		return cmp.Compare(eb.weight, ea.weight)
	})
	for _, i := range p.order {
		e := &p.entries[i]
		if len(p.groups) == 0 || p.groups[len(p.groups)-1].priority != e.priority {
			p.groups = append(p.groups, group{priority: e.priority})
		}
		g := &p.groups[len(p.groups)-1]
		g.total += e.weight
		g.members = append(g.members, i)
		g.cum = append(g.cum, g.total)
	}
	return p
}

// Pick returns the index of the target to use: the best priority that has a target neither ejected
// nor excluded, split by weight; exclude (nil for none) lets a retry skip targets that already failed
// and may be called more than once per index. When every remaining target is ejected it picks among
// them anyway, as Envoy's panic mode does, since a possibly bad endpoint beats a certain failure; it
// returns false only when there are no targets or all are excluded.
func (p *Picker) Pick(exclude func(i int) bool) (int, bool) {
	if len(p.groups) == 0 {
		return -1, false
	}
	if exclude == nil && !p.health.anyEjected() {
		g := &p.groups[0]
		return g.members[g.search(rand.Uint64N(g.total))], true
	}
	c := clock{h: p.health}
	for gi := range p.groups {
		if i, ok := p.pickIn(&p.groups[gi], exclude, &c, true); ok {
			return i, true
		}
	}
	// Everything left is ejected: keep the locality preference but ignore health.
	for gi := range p.groups {
		if i, ok := p.pickIn(&p.groups[gi], exclude, &c, false); ok {
			return i, true
		}
	}
	return -1, false
}

// rejectionTries bounds the cheap draws before Pick scans a priority; a priority with half its weight
// out still avoids the scan 3 times in 4, and an all-ejected one wastes only two draws.
const rejectionTries = 2

// search returns the position in g.members whose cumulative range holds r.
func (g *group) search(r uint64) int {
	// The first cum[j] > r, i.e. >= r+1; r < total so it always exists.
	j, _ := slices.BinarySearch(g.cum, r+1)
	return j
}

// pickIn draws by weight among the members of g that pass exclude and, if checkHealth, are not
// ejected.
func (p *Picker) pickIn(g *group, exclude func(int) bool, c *clock, checkHealth bool) (int, bool) {
	usable := func(i int) bool {
		if exclude != nil && exclude(i) {
			return false
		}
		return !checkHealth || c.h == nil || !c.ejectedAt(p.entries[i].state)
	}
	// Rejection sampling first: draw from the whole table and retry if the draw is unusable. The
	// accepted draws stay proportional to weight, and with a few targets out (the usual case) this
	// avoids the linear scan below, which is what large target lists would otherwise pay on every
	// Pick while anything in the mesh is ejected.
	for range rejectionTries {
		if i := g.members[g.search(rand.Uint64N(g.total))]; usable(i) {
			return i, true
		}
	}
	var sum uint64
	for _, i := range g.members {
		if usable(i) {
			sum += p.entries[i].weight
		}
	}
	switch sum {
	case 0:
		return -1, false
	case g.total:
		return g.members[g.search(rand.Uint64N(sum))], true
	}
	r := rand.Uint64N(sum)
	last := -1
	for _, i := range g.members {
		if !usable(i) {
			continue
		}
		w := p.entries[i].weight
		if r < w {
			return i, true
		}
		r -= w
		last = i
	}
	// Only reached when an ejection landed between the two passes; the last usable one is as good
	// as any.
	return last, last >= 0
}
