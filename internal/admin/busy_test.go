package admin

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The dumps (/config_dump, /registry, /routes, /clusters and the page) each build the whole
// registry in memory: with 10,000 services one /clusters?format=json takes tens of MiB, so
// twenty at once took the process past 1 GiB. They are limited; the probes are not.
func TestDumpsServedAtOnceAreBounded(t *testing.T) {
	t.Parallel()
	held := make(chan struct{})
	var heldOnce sync.Once
	entered := make(chan struct{}, 1)
	var busy atomic.Uint64
	s := startStack(t, func(c *Config) {
		clusters := c.Clusters
		c.MaxDumps = 1
		c.Busy = &busy
		// /clusters blocks inside the limit until released, so the test holds the one slot.
		c.Clusters = func() []Cluster {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-held
			return clusters()
		}
	})
	release := func() { heldOnce.Do(func() { close(held) }) }
	t.Cleanup(release)
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(s.admin + "/clusters")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-entered

	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "refuses a second dump with 503 while one is served", path: "/config_dump", want: http.StatusServiceUnavailable},
		{name: "refuses the page too", path: "/", want: http.StatusServiceUnavailable},
		{name: "still answers readiness", path: "/ready", want: http.StatusOK},
		{name: "still answers liveness", path: "/healthz", want: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := s.fetch(t, "GET", tc.path); code != tc.want {
				t.Errorf("GET %s = %d %q, want %d", tc.path, code, body, tc.want)
			}
		})
	}
	if got := busy.Load(); got != 2 {
		t.Errorf("busy count = %d, want 2 (the two dumps refused)", got)
	}
	release()
	if code := <-first; code != http.StatusOK {
		t.Fatalf("the held /clusters answered %d, want 200", code)
	}
	t.Run("serves dumps again once the slot is free", func(t *testing.T) {
		// The held handler frees its slot as it returns, which may be just after its client
		// has read the whole response: give it a moment rather than race it.
		code, _ := s.fetch(t, "GET", "/registry")
		for deadline := time.Now().Add(5 * time.Second); code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
			code, _ = s.fetch(t, "GET", "/registry")
		}
		if code != http.StatusOK {
			t.Errorf("GET /registry = %d, want 200", code)
		}
	})
}
