package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/heapshrink"
)

// startHeapShrink returns the heap's free pages to the system after each burst of at least
// threshold bytes allocated (0: never), and counts each time in meshentry_heap_shrinks_total.
// It stops with ctx.
func startHeapShrink(ctx context.Context, threshold int, reg *prometheus.Registry, log *slog.Logger) {
	if threshold == 0 {
		return
	}
	s := &heapshrink.Shrinker{Threshold: uint64(threshold)}
	go s.Run(ctx)
	shrinks := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshentry_heap_shrinks_total",
		Help: "Times the free heap was returned to the system once a burst of work that grew the process ended (--heap-shrink-bytes)."},
		func() float64 { return float64(s.Shrinks()) })
	if err := reg.Register(shrinks); err != nil {
		log.Error("heap shrink metric left out", "err", err)
	}
}
