// Package heapshrink gives the heap's free pages back to the system once a burst of work has
// ended, as Envoy's shrink_heap overload action does for its allocator.
//
// A burst of thousands of requests at once takes tens of KiB each (buffers, per-request state,
// grown stacks); when it ends, the HTTP engine keeps a few hundred buffer sets and lets the
// rest go. The runtime keeps those pages resident until its next collection, up to two minutes
// on an idle proxy, and its scavenger returns them only gradually after that, so the proxy's
// resident size stays near its peak long after the peak. The shrinker sees a burst end (much
// allocated since the last shrink, next to nothing in the last look) and then collects and
// returns the free pages at once. Under steady load it never fires: there is no quiet look.
package heapshrink

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Defaults: a look every 500 ms; a shrink once 64 MiB were allocated since the last and less
// than 1 MiB in the last look, at most one per 10 s (Envoy's shrink_heap runs at most every 10 s).
const (
	DefaultEvery     = 500 * time.Millisecond
	DefaultThreshold = 64 << 20
	DefaultMinGap    = 10 * time.Second
)

// Shrinker returns free heap pages to the system after bursts. The zero value watches this
// process with the defaults.
type Shrinker struct {
	// Every is how often the shrinker looks, Threshold how much must have been allocated since
	// the last shrink, and MinGap the least time between two shrinks; zero takes the default.
	Every, MinGap time.Duration
	Threshold     uint64
	// Allocated reports the bytes allocated so far (it only grows); nil reads the runtime's
	// /gc/heap/allocs:bytes. Free returns the free pages; nil is debug.FreeOSMemory, which
	// collects first.
	Allocated func() uint64
	Free      func()

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
	allocated, free := s.Allocated, s.Free
	if allocated == nil {
		allocated = heapAllocs()
	}
	if free == nil {
		free = debug.FreeOSMemory
	}
	quiet := max(threshold/64, 1)
	t := time.NewTicker(every)
	defer t.Stop()
	base := allocated() // at the last shrink
	prev := base        // at the last look
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur := allocated()
			burstEnded := cur-base >= threshold && cur-prev < quiet
			prev = cur
			if !burstEnded || (!last.IsZero() && now.Sub(last) < gap) {
				continue
			}
			free()
			s.shrinks.Add(1)
			base, prev, last = allocated(), allocated(), now
		}
	}
}

// heapAllocs returns a reader of the bytes the runtime allocated on the heap so far.
func heapAllocs() func() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	return func() uint64 {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return sample[0].Value.Uint64()
	}
}
