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
	// Outlier, when set, replaces ConsecutiveFailures and EjectFor with a DestinationRule's
	// outlierDetection (see OutlierConfig).
	Outlier *OutlierConfig
}

// Health is passive health checking shared by every Picker built from successive snapshots, so an
// endpoint's failure streak and ejection survive a reload.
type Health struct {
	// params is the outlier configuration in force; SetOutlier swaps it on a reload without
	// touching the records, so streaks and ejections survive a policy change.
	params atomic.Pointer[outlierParams]
	now    func() time.Time
	// epoch is when the tracker was made: the interval sweeps that end ejections fall on
	// epoch + k*interval.
	epoch int64
	// hosts is the size of the pool the ejection and health percentages are taken of (see SetHosts).
	hosts atomic.Int64
	// refused counts ejections maxEjectionPercent prevented.
	refused atomic.Uint64

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
	// failures is the local-origin streak (connects that failed); errs5xx and errsGateway are the
	// streaks of 5xx answers and of 502/503/504 answers.
	failures    atomic.Uint32
	errs5xx     atomic.Uint32
	errsGateway atomic.Uint32
	// times is how many ejections the next ejection's length is multiplied by (before it, minus
	// the healthy intervals since the last one ended); ended is the UnixNano the last one ended.
	times atomic.Uint32
	ended atomic.Int64
	// until is the UnixNano time the ejection ends, 0 when not ejected; an expired value is cleared
	// lazily by the first check that notices it.
	until atomic.Int64
	// pinned marks a record a Picker holds, which making room must not drop (see pin).
	pinned atomic.Bool
}

// NewHealth returns an empty tracker in which every endpoint starts healthy.
func NewHealth(cfg HealthConfig) *Health {
	h := &Health{now: cfg.Now}
	if h.now == nil {
		h.now = time.Now
	}
	h.epoch = h.now().UnixNano()
	if cfg.Outlier != nil {
		h.params.Store(cfg.Outlier.params())
	} else {
		h.params.Store(fixedParams(cfg.ConsecutiveFailures, cfg.EjectFor))
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

// ReportFailure records a failed connection to key (a local-origin failure) and reports whether
// this failure ejected it, so the caller can log and count ejections; failures while ejected are
// not counted, because traffic reaching an ejected endpoint is the all-ejected fallback and says
// nothing new.
func (h *Health) ReportFailure(key string) bool {
	return h.Report(key, LocalFailure)
}

// ReportSuccess records a connection to key that opened: it ends the local-origin failure streak,
// because only consecutive failures mean an endpoint is bad, but leaves the 5xx streaks to the
// answers (Report); it does not cut an ejection short, as Envoy does not either.
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
