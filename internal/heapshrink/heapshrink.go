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

// Defaults: a look every 250 ms; a shrink once the footprint grew by 64 MiB since the last and
// then stayed still (under 1 MiB grown or allocated per look) for 2 s, longer than an idle
// keep-alive connection takes to park and let its state go (1 s); at most one per 10 s (Envoy's
// shrink_heap runs at most every 10 s).
const (
	DefaultEvery     = 250 * time.Millisecond
	DefaultQuiet     = 2 * time.Second
	DefaultThreshold = 64 << 20
	DefaultMinGap    = 10 * time.Second
)

// Shrinker returns free heap pages to the system after bursts. The zero value watches this
// process with the defaults.
type Shrinker struct {
	// Every is how often the shrinker looks, Threshold how much the footprint must have grown
	// since the last shrink, Quiet how long it must then have stayed still, and MinGap the
	// least time between two shrinks; zero takes the default.
	Every, Quiet, MinGap time.Duration
	Threshold            uint64
	// Footprint reports the memory the runtime holds from the system now (heap and stacks,
	// less what it already returned), Allocated the bytes allocated so far; nil reads them from
	// runtime/metrics. Free returns the free pages; nil is debug.FreeOSMemory, which collects
	// first.
	Footprint, Allocated func() uint64
	Free                 func()

	shrinks atomic.Uint64
}

// Shrinks counts the times the shrinker returned free pages.
func (s *Shrinker) Shrinks() uint64 { return s.shrinks.Load() }

// Run watches until ctx ends.
func (s *Shrinker) Run(ctx context.Context) {
	every, quietFor, gap, threshold := s.Every, s.Quiet, s.MinGap, s.Threshold
	if every <= 0 {
		every = DefaultEvery
	}
	if quietFor <= 0 {
		quietFor = DefaultQuiet
	}
	if gap <= 0 {
		gap = DefaultMinGap
	}
	if threshold == 0 {
		threshold = DefaultThreshold
	}
	footprint, allocated, free := s.Footprint, s.Allocated, s.Free
	if footprint == nil || allocated == nil {
		rt := newRuntimeReader()
		footprint, allocated = rt.footprint, rt.allocated
	}
	if free == nil {
		free = debug.FreeOSMemory
	}
	quiet := max(threshold/64, 1)
	t := time.NewTicker(every)
	defer t.Stop()
	base := footprint()                      // at the last shrink
	prevFoot, prevAlloc := base, allocated() // at the last look
	var last, stillSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			foot, alloc := footprint(), allocated()
			if foot >= prevFoot+quiet || alloc-prevAlloc >= quiet || stillSince.IsZero() {
				stillSince = now
			}
			prevFoot, prevAlloc = foot, alloc
			if foot < base+threshold || now.Sub(stillSince) < quietFor || (!last.IsZero() && now.Sub(last) < gap) {
				continue
			}
			free()
			s.shrinks.Add(1)
			base, prevFoot, prevAlloc, last = footprint(), footprint(), allocated(), now
		}
	}
}

// runtimeReader reads the runtime's memory figures.
type runtimeReader struct{ samples []metrics.Sample }

func newRuntimeReader() *runtimeReader {
	return &runtimeReader{samples: []metrics.Sample{
		{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}}
}

func (r *runtimeReader) read(i int) uint64 {
	metrics.Read(r.samples[i : i+1])
	if v := r.samples[i].Value; v.Kind() == metrics.KindUint64 {
		return v.Uint64()
	}
	return 0
}

func (r *runtimeReader) footprint() uint64 { return r.read(0) - min(r.read(1), r.read(0)) }
func (r *runtimeReader) allocated() uint64 { return r.read(2) }
