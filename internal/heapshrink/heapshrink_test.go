package heapshrink

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

var sink [][]byte

// TestShrinkReturnsTheFreePagesOfABurst allocates a burst's worth of memory, lets it go and
// goes quiet, and checks that the runtime returned it to the system without waiting for its
// own schedule.
func TestShrinkReturnsTheFreePagesOfABurst(t *testing.T) {
	s := &Shrinker{Every: 20 * time.Millisecond, Quiet: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	time.Sleep(50 * time.Millisecond) // the shrinker's first look, before the burst

	const burst = 128 << 20
	for range burst >> 16 {
		b := make([]byte, 1<<16)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1 // touch every page, so it is resident
		}
		sink = append(sink, b)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	// A burst descheduled for longer than Quiet (a loaded CI machine) looks still, and may be
	// shrunk while it holds its memory; such a shrink frees little and only backs off. What
	// must hold is one shrink once the burst is garbage, and no other within the gap after it.
	during := s.Shrinks()
	sink = nil

	deadline := time.Now().Add(5 * time.Second)
	for s.Shrinks() == during && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // ten looks, well within the default 10 s gap
	if got := s.Shrinks() - during; got != 1 {
		t.Fatalf("shrinks = %d after a burst of %d MiB became garbage, want 1", got, burst>>20)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if got := int64(after.HeapReleased) - int64(before.HeapReleased); got < burst/2 {
		t.Fatalf("heap released grew by %d MiB, want at least %d", got>>20, burst>>21)
	}
}

func TestShrinkWaitsForTheBurstToEndAndForTheGap(t *testing.T) {
	var footprint, allocated atomic.Uint64
	var frees atomic.Int32
	s := &Shrinker{Footprint: footprint.Load, Allocated: allocated.Load, Every: 10 * time.Millisecond,
		Quiet: 30 * time.Millisecond, MinGap: time.Second, Threshold: 6400, Free: func() { frees.Add(1); footprint.Store(0) }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	// busy allocates perRound every 2 ms for d, and grows by as much: a look never finds it
	// quiet.
	busy := func(d time.Duration, perRound uint64) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
			allocated.Add(perRound)
			footprint.Add(perRound)
		}
	}
	steps := []struct {
		name string
		run  func()
		want int32
	}{
		{"grown under the threshold, then quiet", func() { footprint.Add(6399); time.Sleep(200 * time.Millisecond) }, 0},
		{"allocating much without growing", func() {
			for range 50 {
				allocated.Add(100000)
				time.Sleep(2 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
		}, 0},
		{"over it but still busy", func() { busy(150*time.Millisecond, 1000) }, 0},
		{"quiet after the burst", func() { time.Sleep(200 * time.Millisecond) }, 1},
		{"a second burst within the gap", func() { busy(50*time.Millisecond, 1000); time.Sleep(200 * time.Millisecond) }, 1},
		{"after the gap", func() { time.Sleep(time.Second) }, 2},
	}
	for _, st := range steps {
		st.run()
		if got := frees.Load(); got != st.want {
			t.Fatalf("%s: %d shrinks, want %d", st.name, got, st.want)
		}
	}
}

// TestShrinkThatFreedLittleIsTriedAgain: slow requests in flight hold a burst's memory and look
// still, so the first shrink frees little; the one after they end must not wait out the gap.
func TestShrinkThatFreedLittleIsTriedAgain(t *testing.T) {
	var footprint atomic.Uint64
	var frees atomic.Int32
	var held atomic.Bool
	held.Store(true)
	s := &Shrinker{Footprint: footprint.Load, Allocated: func() uint64 { return 0 }, Every: 10 * time.Millisecond,
		Quiet: 50 * time.Millisecond, MinGap: time.Hour, Threshold: 6400,
		Free: func() {
			frees.Add(1)
			if !held.Load() {
				footprint.Store(0)
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	time.Sleep(30 * time.Millisecond)
	footprint.Store(100000) // the burst, its memory still held
	waitFor(t, "a first shrink while the memory is held", func() bool { return frees.Load() >= 1 })
	held.Store(false) // the requests end
	waitFor(t, "a shrink that frees it", func() bool { return footprint.Load() == 0 })
	n := frees.Load()
	time.Sleep(300 * time.Millisecond)
	if got := frees.Load(); got != n {
		t.Fatalf("%d more shrinks after the one that freed the burst, within the hour's gap", got-n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
	}
}
