package balance

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// rrState is one priority's smooth weighted round robin: every pick adds each usable member's
// weight to its credit and takes the member with the most, which then pays the round's total.
// For a fixed set this is a fixed rotation that interleaves heavy members instead of bunching
// them, the property Envoy's EDF scheduler has; a mutex guards it because the rotation is shared.
type rrState struct {
	mu  sync.Mutex
	cur []int64 // parallels group.members
	// seq is one whole round of the rotation with every member in, worked out in advance when the
	// weights sum to at most maxRoundRobinSeq, so the common pick (nothing ejected or excluded) is
	// one atomic add instead of a lock and a scan; next counts those picks.
	seq  []int32
	next atomic.Uint64
}

// maxRoundRobinSeq bounds the precomputed round; heavier weight sums take the locked path always.
const maxRoundRobinSeq = 4096

func newRRState(p *Picker, g *group) *rrState {
	rs := &rrState{cur: make([]int64, len(g.members))}
	if g.total > maxRoundRobinSeq {
		return rs
	}
	all := filter{entries: p.entries}
	rs.seq = make([]int32, g.total)
	for k := range rs.seq {
		i, _ := p.lockedRoundRobin(g, rs, &all)
		rs.seq[k] = int32(i)
	}
	clear(rs.cur)
	return rs
}

// pickRoundRobin is the next member of the rotation that f allows; ejected or excluded members
// are left out of the round, so the others keep their relative order.
func (p *Picker) pickRoundRobin(g *group, f *filter) (int, bool) {
	rs := g.rr
	if rs.seq != nil && f.exclude == nil && !f.health {
		return int(rs.seq[(rs.next.Add(1)-1)%uint64(len(rs.seq))]), true
	}
	return p.lockedRoundRobin(g, rs, f)
}

// lockedRoundRobin is one step of the smooth weighted rotation over the members f allows.
func (p *Picker) lockedRoundRobin(g *group, rs *rrState, f *filter) (int, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var total int64
	best := -1
	for j, i := range g.members {
		if !f.ok(i) {
			continue
		}
		w := int64(min(p.entries[i].weight, 1<<40))
		rs.cur[j] += w
		total += w
		if best < 0 || rs.cur[j] > rs.cur[best] {
			best = j
		}
	}
	if best < 0 {
		return -1, false
	}
	rs.cur[best] -= total
	return g.members[best], true
}

// leastRequestChoices is Envoy's choice_count default: two random choices.
const leastRequestChoices = 2

// pickLeast is Envoy's least-request balancer: with equal weights, the member with fewer requests
// in flight of two drawn at random; with unequal ones, a draw by weight/(active+1), Envoy's
// formula with active_request_bias 1.0, so weights still apply while busy members get less.
func (p *Picker) pickLeast(g *group, f *filter) (int, bool) {
	if g.equal {
		best := -1
		for range leastRequestChoices {
			i, ok := p.pickUniform(g, f)
			if !ok {
				return -1, false
			}
			if best < 0 || p.active[i].Load() < p.active[best].Load() {
				best = i
			}
		}
		return best, true
	}
	var total float64
	for _, i := range g.members {
		if f.ok(i) {
			total += p.effectiveWeight(i)
		}
	}
	if total == 0 {
		return -1, false
	}
	r := rand.Float64() * total
	last := -1
	for _, i := range g.members {
		if !f.ok(i) {
			continue
		}
		w := p.effectiveWeight(i)
		if r < w {
			return i, true
		}
		r -= w
		last = i
	}
	// Rounding, or an ejection between the passes, left r past the end; the last usable one will do.
	return last, last >= 0
}

func (p *Picker) effectiveWeight(i int) float64 {
	return float64(p.entries[i].weight) / float64(max(p.active[i].Load(), 0)+1)
}

// pickUniform draws a member f allows, every one equally likely: a few blind draws, then a count.
func (p *Picker) pickUniform(g *group, f *filter) (int, bool) {
	n := len(g.members)
	for range rejectionTries {
		if i := g.members[rand.IntN(n)]; f.ok(i) {
			return i, true
		}
	}
	usable := 0
	for _, i := range g.members {
		if f.ok(i) {
			usable++
		}
	}
	if usable == 0 {
		return -1, false
	}
	k := rand.IntN(usable)
	last := -1
	for _, i := range g.members {
		if !f.ok(i) {
			continue
		}
		if k == 0 {
			return i, true
		}
		k--
		last = i
	}
	return last, last >= 0
}
