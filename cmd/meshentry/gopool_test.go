package main

import (
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/gopool"
	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/proxy"
)

func TestGoroutinePoolIdleFlagMustBePositive(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"0", "-3"} {
		var l limitFlags
		fl := pflag.NewFlagSet("run", pflag.ContinueOnError)
		l.register(fl)
		if err := fl.Parse([]string{"--goroutine-pool-idle", arg}); err != nil {
			t.Fatal(err)
		}
		if err := l.apply(&proxy.Config{}); err == nil {
			t.Errorf("--goroutine-pool-idle %s was accepted", arg)
		}
	}
}

// Not parallel: it bounds the process's pool, which the other tests' listeners share.
func TestGoroutinePoolIsBoundedAndCountedInTheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	setGoroutinePool(2, reg, slog.New(slog.DiscardHandler))
	defer gopool.SetMaxIdle(0)
	before := gopool.ProcessStats()
	// Six tasks at once: at most two of their goroutines may wait for the next one.
	var started, release sync.WaitGroup
	started.Add(6)
	release.Add(1)
	var done sync.WaitGroup
	done.Add(6)
	for range 6 {
		gopool.Go(func() {
			defer done.Done()
			started.Done()
			release.Wait()
		})
	}
	started.Wait()
	release.Done()
	done.Wait()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	for deadline := time.Now().Add(5 * time.Second); gopool.ProcessStats().Full-before.Full < 4 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	after := gopool.ProcessStats()
	if after.Idle > 2 {
		t.Errorf("%d goroutines wait in the pool, over the bound of 2", after.Idle)
	}
	if got := after.Full - before.Full; got < 4 {
		t.Errorf("%d goroutines ended at the bound, want at least 4 of the 6", got)
	}
	m := metricstest.Scrape(t, srv.URL)
	if got := m.Sum("meshentry_goroutine_pool_full_total", nil); got < float64(before.Full+4) {
		t.Errorf("meshentry_goroutine_pool_full_total = %v, want at least %d", got, before.Full+4)
	}
	if got := m.Sum("meshentry_goroutine_pool_started_total", nil) + m.Sum("meshentry_goroutine_pool_reused_total", nil); got < float64(before.Started+before.Reused+6) {
		t.Errorf("started + reused = %v, want at least %d", got, before.Started+before.Reused+6)
	}
}
