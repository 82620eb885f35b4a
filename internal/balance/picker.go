package balance

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync/atomic"
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
	// Labels are the endpoint's labels (registry.Endpoint.Labels), which failoverPriority reads.
	Labels map[string]string
}

// Picker chooses among one service port's targets; it is built once per snapshot and then only read
// (but for the in-flight counters and the round-robin state, which it guards), so any number of
// goroutines may call Pick at once.
type Picker struct {
	targets []Target
	client  Client
	health  *Health
	lb      LB
	mode    LocalityMode

	// entries and active parallel targets; active counts requests in flight (Begin, End).
	entries []entry
	active  []atomic.Int64
	// order lists the indices of the targets that can be picked, in the order the proxy prefers
	// them; a distribute rule leaves out the localities it sends nothing to.
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
// excluded a weighted-random pick is one random number and a binary search; the other algorithms
// keep their tables here too.
type group struct {
	priority int
	members  []int    // target indices, in preference order
	cum      []uint64 // cum[j] = sum of the weights of members[0..j]
	total    uint64
	// equal says every member has the same weight, which makes LEAST_REQUEST two random choices.
	equal bool
	rr    *rrState
	ring  []ringPoint
	table []int32 // Maglev: entry -> target index
}

// NewPicker ranks targets against the proxy's locality and network once, so Pick only has to draw;
// the indices Pick returns refer to targets, and h may be nil to ignore health. It is
// NewPolicyPicker without a DestinationRule.
func NewPicker(targets []Target, self Locality, network string, h *Health) *Picker {
	return NewPolicyPicker(targets, Client{Locality: self, Network: network}, h, PolicyConfig{})
}

// NewPolicyPicker builds a picker that applies a DestinationRule's load balancing and locality
// settings (cfg, from FromTrafficPolicy) for the proxy c; h may be nil to ignore health. With
// cfg.Outlier set it also tells h the pool's size (Health.SetHosts), so h should serve this one
// service port; the caller applies cfg.Outlier itself with Health.SetOutlier.
func NewPolicyPicker(targets []Target, c Client, h *Health, cfg PolicyConfig) *Picker {
	p := &Picker{
		targets: slices.Clone(targets),
		client:  c,
		health:  h,
		lb:      cfg.LB,
		mode:    cfg.Locality.Mode,
		entries: make([]entry, len(targets)),
		active:  make([]atomic.Int64, len(targets)),
	}
	places := place(targets, c, cfg.Locality)
	for i, t := range targets {
		e := &p.entries[i]
		e.priority, e.weight = places[i].priority, places[i].weight
		if h != nil {
			e.state = h.pin(t.Key)
		}
		if places[i].keep {
			p.order = append(p.order, i)
		}
	}
	if h != nil && cfg.Outlier != nil {
		h.SetHosts(len(targets))
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
			p.groups = append(p.groups, group{priority: e.priority, equal: true})
		}
		g := &p.groups[len(p.groups)-1]
		if len(g.members) > 0 && p.entries[g.members[0]].weight != e.weight {
			g.equal = false
		}
		g.total += e.weight
		g.members = append(g.members, i)
		g.cum = append(g.cum, g.total)
	}
	for gi := range p.groups {
		p.buildGroup(&p.groups[gi], cfg)
	}
	return p
}

// buildGroup makes the tables the algorithm draws from.
func (p *Picker) buildGroup(g *group, cfg PolicyConfig) {
	switch p.lb {
	case LBRoundRobin:
		g.rr = newRRState(p, g)
	case LBRingHash:
		g.ring = buildRing(p.targets, p.entries, g.members, cfg.RingSize)
	case LBMaglev:
		g.table = buildMaglev(p.targets, p.entries, g.members, cfg.TableSize)
	}
}

// Passthrough reports that the policy is PASSTHROUGH: the proxy should connect to the address the
// application asked for instead of picking a target.
func (p *Picker) Passthrough() bool { return p.lb == LBPassthrough }

// Hashing reports that the policy is consistent hashing, so the proxy should compute a key (Key)
// and call PickHash.
func (p *Picker) Hashing() bool { return p.lb == LBRingHash || p.lb == LBMaglev }

// Policy returns the algorithm the picker applies, for explain.
func (p *Picker) Policy() LB { return p.lb }

// LocalityMode returns how the picker ranks endpoints by locality, for explain.
func (p *Picker) LocalityMode() LocalityMode { return p.mode }

// Begin counts a request to target i as in flight until the matching End, which LEAST_REQUEST
// reads; both are one atomic add.
func (p *Picker) Begin(i int) { p.active[i].Add(1) }

// End ends a request Begin counted.
func (p *Picker) End(i int) { p.active[i].Add(-1) }

// Pick returns the index of the target to use: the best priority that has a target neither ejected
// nor excluded, chosen there by the policy (weighted random by default); exclude (nil for none) lets
// a retry skip targets that already failed and may be called more than once per index. When every
// remaining target is ejected it picks among them anyway, as Envoy's panic mode does, since a
// possibly bad endpoint beats a certain failure; it returns false only when there are no targets or
// all are excluded. A consistent-hash picker without a key picks at random, as Envoy does.
func (p *Picker) Pick(exclude func(i int) bool) (int, bool) {
	return p.pick(exclude, 0, false)
}

// PickHash is Pick for a consistent-hash key (Key, HashString); a picker that does not hash ignores it.
func (p *Picker) PickHash(key uint64, exclude func(i int) bool) (int, bool) {
	return p.pick(exclude, key, true)
}

func (p *Picker) pick(exclude func(i int) bool, key uint64, hashed bool) (int, bool) {
	if len(p.groups) == 0 {
		return -1, false
	}
	checkHealth := p.health.anyEjected() && !p.health.ignoreEjections()
	if exclude == nil && !checkHealth && (p.lb == LBDefault || p.lb == LBRandom) {
		g := &p.groups[0]
		return g.members[g.search(rand.Uint64N(g.total))], true
	}
	f := filter{exclude: exclude, c: clock{h: p.health}, entries: p.entries, health: checkHealth}
	for {
		for gi := range p.groups {
			if i, ok := p.choose(&p.groups[gi], &f, key, hashed); ok {
				return i, true
			}
		}
		if !f.health {
			return -1, false
		}
		// Everything left is ejected: keep the locality preference but ignore health.
		f.health = false
	}
}

// choose applies the policy within one priority.
func (p *Picker) choose(g *group, f *filter, key uint64, hashed bool) (int, bool) {
	switch {
	case hashed && g.ring != nil:
		return pickRing(g, f, key)
	case hashed && g.table != nil:
		return pickMaglev(g, f, key)
	}
	switch p.lb {
	case LBRoundRobin:
		return p.pickRoundRobin(g, f)
	case LBLeastRequest:
		return p.pickLeast(g, f)
	default:
		return p.pickIn(g, f)
	}
}

// filter says which targets a pick may use: not excluded and, while health counts, not ejected.
type filter struct {
	exclude func(int) bool
	c       clock
	entries []entry
	health  bool
}

func (f *filter) ok(i int) bool {
	if f.exclude != nil && f.exclude(i) {
		return false
	}
	return !f.health || f.c.h == nil || !f.c.ejectedAt(f.entries[i].state)
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

// pickIn draws by weight among the members of g that f allows.
func (p *Picker) pickIn(g *group, f *filter) (int, bool) {
	// Rejection sampling first: draw from the whole table and retry if the draw is unusable. The
	// accepted draws stay proportional to weight, and with a few targets out (the usual case) this
	// avoids the linear scan below, which is what large target lists would otherwise pay on every
	// Pick while anything in the mesh is ejected.
	for range rejectionTries {
		if i := g.members[g.search(rand.Uint64N(g.total))]; f.ok(i) {
			return i, true
		}
	}
	var sum uint64
	for _, i := range g.members {
		if f.ok(i) {
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
		if !f.ok(i) {
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
