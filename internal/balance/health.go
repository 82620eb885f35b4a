package balance

import (
	"sync"
	"sync/atomic"
	"time"
)

// HealthConfig sets when an endpoint is ejected and for how long; zero fields take Istio's defaults.
type HealthConfig struct {
	// ConsecutiveFailures in a row eject an endpoint; 0 means 5, Istio's consecutive5xxErrors default.
	ConsecutiveFailures uint32
	// EjectFor is how long an ejected endpoint stays out; 0 means 30s, Istio's baseEjectionTime.
	EjectFor time.Duration
	// Now is the clock, injectable so tests can step past an ejection; nil means time.Now.
	Now func() time.Time
	// MaxEntries bounds the endpoints and addresses tracked (0 means 65,536), since DNS answers
	// bring addresses no configuration lists; when full, healthy records make room first.
	MaxEntries int
}

// Health is passive health checking shared by every Picker built from successive snapshots, so an
// endpoint's failure streak and ejection survive a reload.
type Health struct {
	threshold uint32
	ejectFor  int64
	now       func() time.Time

	// states maps Target.Key to *state. A Picker keeps the pointers of its targets and reads them
	// on every Pick without a map lookup, so records are removed only for keys no current Picker
	// has (Retain), or healthy ones when the map is full, which a Picker reads as healthy anyway.
	states sync.Map
	// count is the number of records in states; mu serializes the writers that add or drop them.
	count int
	max   int
	mu    sync.Mutex
	// evicted counts records dropped, or not made, because the map was full.
	evicted atomic.Uint64
	// ejected counts states whose until is set, letting Pick skip every per-endpoint check in the
	// common case where nothing anywhere is ejected.
	ejected atomic.Int64
	// ejections counts every ejection since the tracker was made (see Ejections).
	ejections atomic.Uint64
}

// state is one endpoint's health; all fields are atomics so the hot path takes no lock.
type state struct {
	failures atomic.Uint32
	// until is the UnixNano time the ejection ends, 0 when not ejected; an expired value is cleared
	// lazily by the first check that notices it.
	until atomic.Int64
	// pinned marks a record a Picker holds, which making room must not drop (see pin).
	pinned atomic.Bool
}

// NewHealth returns an empty tracker in which every endpoint starts healthy.
func NewHealth(cfg HealthConfig) *Health {
	h := &Health{
		threshold: cfg.ConsecutiveFailures,
		ejectFor:  int64(cfg.EjectFor),
		now:       cfg.Now,
	}
	if h.threshold == 0 {
		h.threshold = 5
	}
	if h.ejectFor <= 0 {
		h.ejectFor = int64(30 * time.Second)
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.max = cfg.MaxEntries
	if h.max <= 0 {
		h.max = 1 << 16
	}
	return h
}

// lookup returns the state for key, or nil when nothing was ever recorded or built for it.
func (h *Health) lookup(key string) *state {
	v, ok := h.states.Load(key)
	if !ok {
		return nil
	}
	return v.(*state)
}

// get returns the state for key, creating it so that a Picker and later reports share one record.
// When the map is full and no healthy record can make room, the state returned is not kept: the
// key is then tracked as healthy, and the eviction counted.
func (h *Health) get(key string) *state {
	if s := h.lookup(key); s != nil {
		return s
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.lookup(key); s != nil {
		return s
	}
	if h.count >= h.max && !h.evictHealthyLocked() {
		h.evicted.Add(1)
		return new(state)
	}
	s := new(state)
	h.states.Store(key, s)
	h.count++
	return s
}

// pin returns the record for key, marked as held by a Picker: making room in a full map never
// drops it, since the Picker would go on reading a record reports no longer reach.
func (h *Health) pin(key string) *state {
	s := h.get(key)
	s.pinned.Store(true)
	return s
}

// ReportFailure records a failed connection or request to key and reports whether this failure
// ejected it, so the caller can log and count ejections; failures while ejected are not counted,
// because traffic reaching an ejected endpoint is the all-ejected fallback and says nothing new.
func (h *Health) ReportFailure(key string) bool {
	s := h.get(key)
	now := h.now().UnixNano()
	if h.isEjected(s, now) {
		return false
	}
	n := s.failures.Add(1)
	if n < h.threshold || !s.failures.CompareAndSwap(n, 0) {
		// Below the threshold, or a concurrent failure already moved the streak on and will eject.
		return false
	}
	for {
		// Loop because a concurrent check may clear an expired ejection between the load and the swap.
		old := s.until.Load()
		if old != 0 && now < old {
			return false
		}
		if s.until.CompareAndSwap(old, now+h.ejectFor) {
			if old == 0 {
				h.ejected.Add(1)
			}
			h.ejections.Add(1)
			return true
		}
	}
}

// ReportSuccess ends key's failure streak, because only consecutive failures mean an endpoint is
// bad; it does not cut an ejection short, as Envoy does not either.
func (h *Health) ReportSuccess(key string) {
	s := h.lookup(key)
	if s != nil && s.failures.Load() != 0 {
		s.failures.Store(0)
	}
}

// Failing reports whether key's last connection failed (a failure streak is running), so a retry
// of the same request can move on to another endpoint before the streak reaches ejection.
func (h *Health) Failing(key string) bool {
	s := h.lookup(key)
	return s != nil && s.failures.Load() != 0
}

// Ejected reports whether key is currently ejected; it takes no lock and allocates nothing.
func (h *Health) Ejected(key string) bool {
	s := h.lookup(key)
	if s == nil {
		return false
	}
	return h.isEjected(s, h.now().UnixNano())
}

func (h *Health) isEjected(s *state, now int64) bool {
	u := s.until.Load()
	if u == 0 {
		return false
	}
	if now < u {
		return true
	}
	h.expire(s, u)
	return false
}

// expire clears an ejection that has run out, keeping the ejected count exact.
func (h *Health) expire(s *state, until int64) {
	if s.until.CompareAndSwap(until, 0) {
		h.ejected.Add(-1)
	}
}

// anyEjected is the hot path's shortcut: when false, no endpoint needs checking.
func (h *Health) anyEjected() bool {
	return h != nil && h.ejected.Load() != 0
}

// clock reads the Health clock at most once per Pick, and only if some endpoint is ejected.
type clock struct {
	h   *Health
	t   int64
	set bool
}

func (c *clock) nanos() int64 {
	if !c.set {
		c.t = c.h.now().UnixNano()
		c.set = true
	}
	return c.t
}

// ejectedAt is isEjected with a lazily read clock, so a Pick over healthy endpoints never reads it.
func (c *clock) ejectedAt(s *state) bool {
	if s == nil {
		return false
	}
	u := s.until.Load()
	if u == 0 {
		return false
	}
	if c.nanos() < u {
		return true
	}
	c.h.expire(s, u)
	return false
}
