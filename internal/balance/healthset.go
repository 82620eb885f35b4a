package balance

import (
	"sync"
	"sync/atomic"
)

// DefaultMaxClusters bounds a HealthSet when NewHealthSet is given 0.
const DefaultMaxClusters = 4096

// HealthSet keeps one Health per cluster (service host and port) whose DestinationRule sets
// outlierDetection: Envoy detects outliers per cluster, so each needs its own thresholds and its
// own pool for maxEjectionPercent, and the same Health must come back on every reload for the
// endpoints that stay to keep their streaks and ejections.
type HealthSet struct {
	base HealthConfig
	max  int

	mu sync.Mutex
	m  map[string]*Health
	// overflow counts Healths made but not kept because max clusters were tracked.
	overflow atomic.Uint64
}

// NewHealthSet returns an empty set; base gives every Health its clock and MaxEntries, and
// maxClusters bounds the clusters kept (0 means DefaultMaxClusters).
func NewHealthSet(base HealthConfig, maxClusters int) *HealthSet {
	if maxClusters <= 0 {
		maxClusters = DefaultMaxClusters
	}
	base.Outlier = nil
	return &HealthSet{base: base, max: maxClusters, m: map[string]*Health{}}
}

// For returns cluster's Health with o in force (nil restores the fixed default). When the set is
// full it returns a Health it does not keep, so that cluster still ejects but starts afresh on
// every reload; Overflow counts those.
func (s *HealthSet) For(cluster string, o *OutlierConfig) *Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.m[cluster]; ok {
		h.SetOutlier(o)
		return h
	}
	cfg := s.base
	cfg.Outlier = o
	h := NewHealth(cfg)
	if len(s.m) >= s.max {
		s.overflow.Add(1)
		return h
	}
	s.m[cluster] = h
	return h
}

// Retain drops the clusters keep refuses, such as those no DestinationRule covers any more, and
// returns how many went.
func (s *HealthSet) Retain(keep func(cluster string) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.m {
		if !keep(c) {
			delete(s.m, c)
			n++
		}
	}
	return n
}

// Len returns the number of clusters kept.
func (s *HealthSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Overflow counts the Healths For made but could not keep because the set was full.
func (s *HealthSet) Overflow() uint64 { return s.overflow.Load() }
