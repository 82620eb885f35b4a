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
// shrink_heap runs at most every 10 s) after a shrink that freed much.
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
	w := s.newWatch()
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			w.look(now)
		}
	}
}

// watch is a running shrinker's settings and what it saw.
type watch struct {
	s                    *Shrinker
	every, quietFor, gap time.Duration
	threshold, quiet     uint64
	footprint, allocated func() uint64
	free                 func()

	base                uint64 // the footprint before the burst: after the last shrink that freed much
	prevFoot, prevAlloc uint64 // at the last look
	stillSince, next    time.Time
	backoff             time.Duration // before retrying a shrink that freed little
}

func (s *Shrinker) newWatch() *watch {
	w := &watch{s: s, every: s.Every, quietFor: s.Quiet, gap: s.MinGap, threshold: s.Threshold,
		footprint: s.Footprint, allocated: s.Allocated, free: s.Free}
	if w.every <= 0 {
		w.every = DefaultEvery
	}
	if w.quietFor <= 0 {
		w.quietFor = DefaultQuiet
	}
	if w.gap <= 0 {
		w.gap = DefaultMinGap
	}
	if w.threshold == 0 {
		w.threshold = DefaultThreshold
	}
	if w.footprint == nil || w.allocated == nil {
		rt := newRuntimeReader()
		w.footprint, w.allocated = rt.footprint, rt.allocated
	}
	if w.free == nil {
		w.free = debug.FreeOSMemory
	}
	w.quiet = max(w.threshold/64, 1)
	w.prevFoot, w.prevAlloc = w.footprint(), w.allocated()
	w.base, w.backoff = w.prevFoot, w.quietFor
	return w
}

// look shrinks when the footprint stands threshold over the base and has been still for
// quietFor. A shrink that freed less than half the threshold came while the burst still held
// its memory (slow requests in flight look still too): the base stays, and it is tried again
// after a backoff that doubles up to the runtime's own two-minute collection.
func (w *watch) look(now time.Time) {
	foot, alloc := w.footprint(), w.allocated()
	if foot >= w.prevFoot+w.quiet || alloc-w.prevAlloc >= w.quiet || w.stillSince.IsZero() {
		w.stillSince = now
	}
	w.prevFoot, w.prevAlloc = foot, alloc
	if foot < w.base+w.threshold || now.Sub(w.stillSince) < w.quietFor || now.Before(w.next) {
		return
	}
	w.free()
	w.s.shrinks.Add(1)
	after := w.footprint()
	w.prevFoot, w.prevAlloc = after, w.allocated()
	if after+w.threshold/2 <= foot {
		w.base, w.next, w.backoff = after, now.Add(w.gap), w.quietFor
		return
	}
	w.next = now.Add(w.backoff)
	w.backoff = min(2*w.backoff, 2*time.Minute)
}

// runtimeReader reads the runtime's memory figures.
type runtimeReader struct{ samples []metrics.Sample }

func newRuntimeReader() *runtimeReader {
	return &runtimeReader{samples: []metrics.Sample{
		{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}}
}

// read reads samples [from, to) in one call and returns the first two (0 for one left out).
func (r *runtimeReader) read(from, to int) (uint64, uint64) {
	metrics.Read(r.samples[from:to])
	v := [2]uint64{}
	for i := from; i < to; i++ {
		if s := r.samples[i].Value; s.Kind() == metrics.KindUint64 {
			v[i-from] = s.Uint64()
		}
	}
	return v[0], v[1]
}

func (r *runtimeReader) footprint() uint64 {
	total, released := r.read(0, 2)
	return total - min(released, total)
}

func (r *runtimeReader) allocated() uint64 {
	a, _ := r.read(2, 3)
	return a
}
