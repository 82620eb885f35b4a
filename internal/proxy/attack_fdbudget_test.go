package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

// Finding (attack): the connection cap's descriptor budget does not hold for h2c clients.
// MaxConnections (and its default, (RLIMIT_NOFILE-128)/3) allows each downstream connection three
// descriptors: itself, its upstream and a pooled upstream. One h2c prior-knowledge connection
// carries up to 100 concurrent streams, and each stream to an HTTP/1.1 upstream takes an upstream
// connection of its own, with no per-cluster cap (Envoy's circuit breakers stop at 1024
// connections and requests). So with the default cap a few thousand h2c clients hold 100× the
// descriptors the cap budgets for, and the process runs out again: the admin API and every client
// are refused, as before the fix. Here one h2c connection held 20
// upstream connections at once.
//
// The fix is Envoy's: a cap on the connections to each upstream (its circuit breaker's
// max_connections, Limits.MaxUpstreamConns), beyond which streams wait for a free connection.
// The attacker's assertion (two upstream connections per downstream connection) is not what
// Envoy promises, so the test sets the per-upstream cap low and checks that the open upstream
// connections never exceed it while every stream is still answered.
func TestAttackH2CStreamsStayWithinTheConnectionCapsDescriptorBudget(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const streams = 20
	var open, peak atomic.Int64
	var fwd atomic.Pointer[httpfwd.Server]
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Hold the connections until every stream reached the proxy (the warm-up
			// request included), so that some of them certainly find the cap reached.
			// The wait is long because a loaded CI machine may take seconds to get all the
			// streams there; the handlers return as soon as they are.
			for deadline := time.Now().Add(15 * time.Second); r.URL.Path != "/warm" && time.Now().Before(deadline); {
				if f := fwd.Load(); f != nil && f.HTTP2Stats().Streams > streams {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				n := open.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	const maxUpstreamConns = 4
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow}
spec:
  hosts: [slow.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: `+port+`}}]
`, Config{HTTP: httpfwd.Limits{MaxUpstreamConns: maxUpstreamConns}}, "")
	fwd.Store(h.p.forward)
	var dials atomic.Int64
	tr := &http.Transport{
		Protocols: new(http.Protocols),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", h.addr)
		},
	}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	// One request first, so that the client's HTTP/2 connection is up and the streams below
	// share it rather than racing to dial connections of their own.
	resp, err := c.Get("http://slow.example.com/warm")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var wg sync.WaitGroup
	var answered atomic.Int64
	for range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get("http://slow.example.com/")
			if err != nil {
				t.Errorf("stream failed: %v", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(body) == "ok" {
				answered.Add(1)
			} else {
				t.Errorf("stream answered %d %q, want 200 \"ok\"", resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	t.Run("one h2c connection holds no more connections to an upstream than its cap", func(t *testing.T) {
		if n := dials.Load(); n != 1 {
			t.Fatalf("the client dialed %d connections, want the streams on one", n)
		}
		if got := peak.Load(); got > maxUpstreamConns {
			t.Fatalf("%d upstream connections open at once; the per-upstream cap is %d", got, maxUpstreamConns)
		}
	})
	t.Run("every stream is answered, the ones beyond the cap after a wait", func(t *testing.T) {
		if got := answered.Load(); got != streams {
			t.Fatalf("%d of %d streams answered 200", got, streams)
		}
		if got := h.p.forward.HTTP2Stats().UpstreamOverflows; got == 0 {
			t.Fatalf("UpstreamOverflows %d, want the streams that waited counted", got)
		}
	})
}
