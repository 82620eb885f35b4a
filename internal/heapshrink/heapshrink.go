// Package heapshrink gives the heap's free pages back to the system once a burst of requests has
// ended, as Envoy's shrink_heap overload action does for its allocator.
//
// A burst of thousands of requests at once takes tens of KiB of buffers each; when it ends the
// HTTP engine keeps a few hundred for the next requests and lets the rest go to the garbage
// collector. The runtime then keeps those pages resident until its next collection, up to two
// minutes on an idle proxy, and its scavenger returns them only gradually after that, so the
// proxy's resident size stays at its peak long after the peak. The shrinker watches what the
// engine let go and, once that passes a threshold, collects and returns the free pages at once.
package heapshrink

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Defaults: a look every second; a shrink once 64 MiB were let go since the last, at most one
// per 10 s (Envoy's shrink_heap runs at most every 10 s).
const (
	DefaultEvery     = time.Second
	DefaultThreshold = 64 << 20
	DefaultMinGap    = 10 * time.Second
)

// Shrinker returns free heap pages to the system after bursts. Set Released, then Run it.
type Shrinker struct {
	// Released reports the bytes of request state let go to the garbage collector so far; it
	// only grows.
	Released func() uint64
	// Every is how often Released is read, Threshold how much must have been let go since the
	// last shrink, and MinGap the least time between two shrinks; zero takes the default.
	Every, MinGap time.Duration
	Threshold     uint64
	// Free returns the free pages; nil is debug.FreeOSMemory, which collects first.
	Free func()

	shrinks atomic.Uint64
}

// Shrinks counts the times the shrinker returned free pages.
func (s *Shrinker) Shrinks() uint64 { return s.shrinks.Load() }

// Run watches until ctx ends.
func (s *Shrinker) Run(ctx context.Context) {
	every, gap, threshold := s.Every, s.MinGap, s.Threshold
	if every <= 0 {
		every = DefaultEvery
	}
	if gap <= 0 {
		gap = DefaultMinGap
	}
	if threshold == 0 {
		threshold = DefaultThreshold
	}
	free := s.Free
	if free == nil {
		free = debug.FreeOSMemory
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var base uint64 // what was let go at the last shrink
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if s.Released()-base < threshold || (!last.IsZero() && now.Sub(last) < gap) {
				continue
			}
			free()
			s.shrinks.Add(1)
			base, last = s.Released(), now
		}
	}
}
