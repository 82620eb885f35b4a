package heapshrink

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

var sink [][]byte

// TestShrinkReturnsTheFreePagesOfABurst lets go of a burst's worth of memory, reports it, and
// checks that the runtime returned it to the system without waiting for its own schedule.
func TestShrinkReturnsTheFreePagesOfABurst(t *testing.T) {
	var released atomic.Uint64
	s := &Shrinker{Released: released.Load, Every: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

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
	sink = nil
	released.Add(burst)

	deadline := time.Now().Add(5 * time.Second)
	for s.Shrinks() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Shrinks() != 1 {
		t.Fatalf("shrinks = %d after letting go of %d MiB, want 1", s.Shrinks(), burst>>20)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if got := int64(after.HeapReleased) - int64(before.HeapReleased); got < burst/2 {
		t.Fatalf("heap released grew by %d MiB, want at least %d", got>>20, burst>>21)
	}
}

func TestShrinkWaitsForTheThresholdAndTheGap(t *testing.T) {
	var released atomic.Uint64
	var frees atomic.Int32
	s := &Shrinker{Released: released.Load, Every: 5 * time.Millisecond, MinGap: 300 * time.Millisecond,
		Threshold: 1000, Free: func() { frees.Add(1) }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	steps := []struct {
		add  uint64
		wait time.Duration
		want int32
	}{
		{999, 50 * time.Millisecond, 0},  // under the threshold
		{1, 50 * time.Millisecond, 1},    // at it
		{5000, 50 * time.Millisecond, 1}, // within the gap of the first
		{0, 400 * time.Millisecond, 2},   // after the gap, what came in it
	}
	for i, st := range steps {
		released.Add(st.add)
		time.Sleep(st.wait)
		if got := frees.Load(); got != st.want {
			t.Fatalf("step %d: %d shrinks, want %d", i, got, st.want)
		}
	}
}
