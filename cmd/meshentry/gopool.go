package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/gopool"
)

// setGoroutinePool bounds the process's goroutine pool at maxIdle waiting goroutines and
// exports its counters as meshentry_goroutine_pool_*.
func setGoroutinePool(maxIdle int, reg *prometheus.Registry, log *slog.Logger) {
	gopool.SetMaxIdle(maxIdle)
	stat := func(get func(gopool.Stats) uint64) func() float64 {
		return func() float64 { return float64(get(gopool.ProcessStats())) }
	}
	metrics := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meshentry_goroutine_pool_idle",
			Help: "Goroutines waiting in the pool for the next connection or tunnel to serve."},
			func() float64 { return float64(gopool.ProcessStats().Idle) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshentry_goroutine_pool_started_total",
			Help: "Goroutines the pool started because none was waiting."}, stat(func(s gopool.Stats) uint64 { return s.Started })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshentry_goroutine_pool_reused_total",
			Help: "Connections and tunnels served by a goroutine that was waiting in the pool."}, stat(func(s gopool.Stats) uint64 { return s.Reused })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshentry_goroutine_pool_full_total",
			Help: "Goroutines that ended after their task because --goroutine-pool-idle were waiting already."}, stat(func(s gopool.Stats) uint64 { return s.Full })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "meshentry_goroutine_pool_let_go_total",
			Help: "Goroutines let go after waiting 10 s for a task."}, stat(func(s gopool.Stats) uint64 { return s.LetGo })),
	}
	for _, m := range metrics {
		if err := reg.Register(m); err != nil {
			log.Error("goroutine pool metric left out", "err", err)
		}
	}
}
