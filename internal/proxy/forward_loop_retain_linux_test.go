package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// getWebTest asks addr for path of web.test on a connection of its own and wants a 200.
func getWebTest(addr, path string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: web.test\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s, %v", path, resp.Status, err)
	}
	return nil
}

// TestForwardLoopPoolLetsGoOfEndpointsAReloadRemoved: a reload that takes an endpoint away
// closes the loop pool's idle connections to it at the loop's next request, and a connection
// whose request was in flight during the reload is closed as it comes back, never pooled. One
// loop, so that the next request is the pool's.
func TestForwardLoopPoolLetsGoOfEndpointsAReloadRemoved(t *testing.T) {
	port := func(b *rawBackend) int { return b.ln.Addr().(*net.TCPAddr).Port }
	ask := func(t *testing.T, h *harness, path string) {
		t.Helper()
		if err := getWebTest(h.addr, path); err != nil {
			t.Error(err) // not Fatal: one call runs on a goroutine of its own
		}
	}
	tests := []struct {
		name string
		// before runs against the first config and returns once the reload may come.
		before func(t *testing.T, h *harness) (after func())
	}{
		{name: "an idle connection to the endpoint gone closes at the next request", before: func(t *testing.T, h *harness) func() {
			ask(t, h, "/cl")
			return func() {}
		}},
		{name: "a connection in use as the endpoint went closes when its response is in", before: func(t *testing.T, h *harness) func() {
			done := make(chan struct{})
			go func() { defer close(done); ask(t, h, "/slow") }()
			time.Sleep(100 * time.Millisecond) // the request is upstream, its answer 300 ms off
			return func() { <-done }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gone, stays := startRawBackend(t), startRawBackend(t)
			h, _ := startLoopProxy(t, httpLoopConfig(port(gone), port(stays)), Config{Namespace: "istio-system", EventLoops: 1})
			after := tc.before(t, h)
			h.p.Update(compileSnapshot(t, httpLoopConfig(port(stays), port(stays))))
			after()
			ask(t, h, "/cl") // web.test now at stays: the pool sees the reload
			s := h.p.ForwardLoopHTTPStats()
			if s.PoolRetired != 1 {
				t.Errorf("PoolRetired %d, want the one connection to the endpoint gone: %+v", s.PoolRetired, s)
			}
			if s.PoolReused != 0 {
				t.Errorf("a connection was reused across the reload: %+v", s)
			}
		})
	}
}
