package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/heapshrink"
	"github.com/meshentry/meshentry/internal/proxy"
)

// startHeapShrink returns the heap's free pages to the system once the proxy's HTTP engines
// have let threshold bytes of request state go (0: never), and counts each time in
// meshentry_heap_shrinks_total. It stops with ctx.
func startHeapShrink(ctx context.Context, threshold int, p *proxy.Proxy, reg *prometheus.Registry, log *slog.Logger) {
	if threshold == 0 {
		return
	}
	s := &heapshrink.Shrinker{Released: func() uint64 { return p.Stats().ReleasedBytes }, Threshold: uint64(threshold)}
	go s.Run(ctx)
	shrinks := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshentry_heap_shrinks_total",
		Help: "Times the free heap was returned to the system after a burst of requests ended (--heap-shrink-bytes)."},
		func() float64 { return float64(s.Shrinks()) })
	if err := reg.Register(shrinks); err != nil {
		log.Error("heap shrink metric left out", "err", err)
	}
}
