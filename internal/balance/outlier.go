package balance

import (
	"sync/atomic"
	"time"
)

// Outcome is how one connection or request to an endpoint ended, as outlier detection counts it:
// Success, LocalFailure, or an HTTP status code (Status).
type Outcome int

const (
	// Success is an answer the proxy counts as good (any status below 500 does too).
	Success Outcome = 200
	// LocalFailure is a failure the proxy saw itself: a connect refused, timed out or reset before
	// an answer came ("local origin" in Envoy's terms).
	LocalFailure Outcome = -1
)

// Status returns the outcome of an HTTP answer with the given status code.
func Status(code int) Outcome { return Outcome(code) }

// gateway reports whether o is one of Envoy's gateway errors (502, 503, 504).
func (o Outcome) gateway() bool { return o == 502 || o == 503 || o == 504 }

// OutlierConfig is a DestinationRule's outlierDetection in the form Health applies it; build it
// with FromTrafficPolicy, which fills Istio's defaults.
type OutlierConfig struct {
	// Consecutive5xx answers of 5xx (and, unless SplitLocalOrigin, local failures) eject; 0 turns
	// this check off.
	Consecutive5xx uint32
	// ConsecutiveGateway answers of 502/503/504 (and, unless SplitLocalOrigin, local failures)
	// eject; 0 turns this check off.
	ConsecutiveGateway uint32
	// SplitLocalOrigin counts local failures apart, against ConsecutiveLocalOrigin only.
	SplitLocalOrigin bool
	// ConsecutiveLocalOrigin local failures eject when SplitLocalOrigin is set; 0 turns it off.
	ConsecutiveLocalOrigin uint32
	// Interval is the period of the sweep that ends ejections; 0 ends them the moment they run out.
	Interval time.Duration
	// BaseEjectionTime times the number of ejections so far is how long an ejection lasts.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps that product (Envoy's max_ejection_time, 300s by default); it never cuts
	// below BaseEjectionTime.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent of the pool (see Health.SetHosts) may be ejected at once.
	MaxEjectionPercent int
	// MinHealthPercent: while fewer of the pool are healthy, ejection is ignored and every endpoint
	// is eligible (Envoy's healthy_panic_threshold, which Istio sets from it); 0 turns it off.
	MinHealthPercent int
}

// outlierParams is OutlierConfig with the durations in nanoseconds, read on every report.
type outlierParams struct {
	c5xx, cGateway, cLocal uint32
	split                  bool
	interval, base, max    int64
	maxPct, minHealthPct   int64
}

func (c *OutlierConfig) params() *outlierParams {
	p := &outlierParams{
		c5xx: c.Consecutive5xx, cGateway: c.ConsecutiveGateway, cLocal: c.ConsecutiveLocalOrigin,
		split: c.SplitLocalOrigin, interval: int64(c.Interval), base: int64(c.BaseEjectionTime),
		max: int64(c.MaxEjectionTime), maxPct: int64(c.MaxEjectionPercent), minHealthPct: int64(c.MinHealthPercent),
	}
	if p.base <= 0 {
		p.base = int64(30 * time.Second)
	}
	if p.max <= 0 {
		p.max = int64(300 * time.Second)
	}
	p.max = max(p.max, p.base)
	p.maxPct = min(max(p.maxPct, 0), 100)
	p.minHealthPct = min(max(p.minHealthPct, 0), 100)
	return p
}

// fixedParams is meshentry's default without a DestinationRule: n connect failures (5 when 0)
// eject for d (30s when 0), every time, with no cap on how many go, as before outlierDetection.
func fixedParams(n uint32, d time.Duration) *outlierParams {
	if n == 0 {
		n = 5
	}
	if d <= 0 {
		d = 30 * time.Second
	}
	return &outlierParams{cLocal: n, split: true, base: int64(d), max: int64(d), maxPct: 100}
}

// SetOutlier replaces the outlier configuration in force (nil restores the fixed default), keeping
// every endpoint's streaks and ejections, so a reload that keeps an endpoint keeps its state.
func (h *Health) SetOutlier(c *OutlierConfig) {
	if c == nil {
		h.params.Store(fixedParams(0, 0))
		return
	}
	h.params.Store(c.params())
}

// SetHosts sets the size of the pool maxEjectionPercent and minHealthPercent are taken of: the
// endpoints of the one cluster this Health serves. NewPolicyPicker sets it to its target count.
func (h *Health) SetHosts(n int) { h.hosts.Store(int64(n)) }

// Refused counts the ejections maxEjectionPercent prevented, for the metrics.
func (h *Health) Refused() uint64 { return h.refused.Load() }

// Report records how a request or connection to key ended and reports whether this outcome ejected
// it. Outcomes while key is ejected are ignored, as in ReportFailure.
func (h *Health) Report(key string, o Outcome) bool {
	if o != LocalFailure && o < 500 {
		// An answer below 500 ends every streak: the connection worked and so did the server. It
		// makes no record, so successes on untracked addresses cost no memory.
		if s := h.lookup(key); s != nil {
			resetIfSet(&s.failures)
			resetIfSet(&s.errs5xx)
			resetIfSet(&s.errsGateway)
		}
		return false
	}
	s := h.get(key)
	now := h.now().UnixNano()
	if h.isEjected(s, now) {
		return false
	}
	p := h.params.Load()
	trip := false
	switch {
	case o == LocalFailure:
		n := s.failures.Add(1)
		if p.split {
			trip = p.cLocal > 0 && n >= p.cLocal
		} else {
			// Envoy counts an unsplit local failure as a 503 answer.
			trip = countError(s, p, 503)
		}
	default:
		// A 5xx answer still means the connection worked.
		resetIfSet(&s.failures)
		trip = countError(s, p, o)
	}
	if !trip {
		return false
	}
	s.failures.Store(0)
	s.errs5xx.Store(0)
	s.errsGateway.Store(0)
	return h.eject(s, p, now)
}

// countError adds a 5xx answer to the streaks and reports whether one reached its threshold.
func countError(s *state, p *outlierParams, o Outcome) bool {
	n := s.errs5xx.Add(1)
	trip := p.c5xx > 0 && n >= p.c5xx
	if o.gateway() {
		g := s.errsGateway.Add(1)
		trip = trip || p.cGateway > 0 && g >= p.cGateway
	} else {
		resetIfSet(&s.errsGateway)
	}
	return trip
}

// eject starts an ejection of s unless maxEjectionPercent forbids it, lasting base times the number
// of ejections (less one for each healthy interval since the last), capped, and ending on a sweep.
func (h *Health) eject(s *state, p *outlierParams, now int64) bool {
	if p.maxPct < 100 && !h.roomToEject(p, now) {
		h.refused.Add(1)
		return false
	}
	times := int64(s.times.Load())
	if ended := s.ended.Load(); ended != 0 && p.interval > 0 && now > ended {
		times = max(0, times-(now-ended)/p.interval)
	}
	times++
	d := p.max
	if times <= p.max/p.base {
		d = p.base * times
	}
	until := now + d
	if p.interval > 0 {
		// The sweep that notices the time is up is the first at epoch + k*interval past it.
		k := (until - h.epoch + p.interval - 1) / p.interval
		until = h.epoch + k*p.interval
	}
	for {
		// Loop because a concurrent check may clear an expired ejection between the load and the swap.
		old := s.until.Load()
		if old != 0 && now < old {
			return false
		}
		if s.until.CompareAndSwap(old, until) {
			if old == 0 {
				h.ejected.Add(1)
			}
			s.times.Store(uint32(min(times, 1<<20)))
			s.ended.Store(until)
			h.ejections.Add(1)
			return true
		}
	}
}

// roomToEject reports whether one more ejection stays within maxEjectionPercent of the pool, as
// Envoy counts it: (ejected+1)/hosts. Expired ejections are cleared first so they do not count.
func (h *Health) roomToEject(p *outlierParams, now int64) bool {
	hosts := h.poolSize()
	if 100*(h.ejected.Load()+1) <= p.maxPct*hosts {
		return true
	}
	for _, v := range h.states.Range {
		h.isEjected(v.(*state), now)
	}
	return 100*(h.ejected.Load()+1) <= p.maxPct*hosts
}

// poolSize is SetHosts' value, or the records tracked when it was never set.
func (h *Health) poolSize() int64 {
	if n := h.hosts.Load(); n > 0 {
		return n
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return int64(h.count)
}

// ignoreEjections reports whether so few of the pool are healthy that minHealthPercent turns
// ejection off and every endpoint is eligible.
func (h *Health) ignoreEjections() bool {
	p := h.params.Load()
	if p.minHealthPct == 0 {
		return false
	}
	hosts := h.hosts.Load()
	if hosts <= 0 {
		return false
	}
	return 100*(hosts-h.ejected.Load()) < p.minHealthPct*hosts
}

// resetIfSet zeroes a streak, writing only when it is not zero already so successes on a healthy
// endpoint leave its cache line shared.
func resetIfSet(v *atomic.Uint32) {
	if v.Load() != 0 {
		v.Store(0)
	}
}
