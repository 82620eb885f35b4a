package httpfwd

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestClusterLimitsAddNoAllocationToTheKeepAlivePath is not parallel: AllocsPerRun counts the
// whole process. The same keep-alive round trip is measured with an Upstream that carries no
// limits and with one whose cluster sets every counted limit: the limits are shared, so a
// request only bumps their counters.
func TestClusterLimitsAddNoAllocationToTheKeepAlivePath(t *testing.T) {
	up := benchBackend(t)
	measure := func(lim *ClusterLimits) float64 {
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return Upstream{Addr: up, Limits: lim}, nil })
		return keepAliveAllocs(t, &Server{Router: router}, "GET /hello HTTP/1.1\r\nHost: bench.test\r\n\r\n")
	}
	without := measure(nil)
	with := measure(&ClusterLimits{Settings: PoolSettings{MaxConnections: 4, MaxPending: 4, MaxRequests: 100, MaxRequestsPerConn: 1 << 20}})
	if with > without+0.05 {
		t.Errorf("a round trip allocates %.2f times with cluster limits, %.2f without", with, without)
	}
	t.Logf("allocations per keep-alive round trip: %.2f without cluster limits, %.2f with", without, with)
}

// statusRouter routes to one upstream and keeps the statuses Responded saw.
type statusRouter struct {
	up       Upstream
	mu       sync.Mutex
	statuses []int
}

func (r *statusRouter) Route(*RequestHead, int) (Upstream, *Reject) { return r.up, nil }
func (r *statusRouter) Done(Upstream, error)                        {}
func (r *statusRouter) Responded(_ Upstream, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, status)
}

func TestAStatusReporterSeesEachResponseStatusAndResponseFieldsReachTheClient(t *testing.T) {
	t.Parallel()
	b := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(503)
		}
	})
	router := &statusRouter{up: Upstream{Addr: b.addr(), ResponseFields: []Field{{Name: "Set-Cookie", Value: "k=v; Max-Age=5"}}}}
	c := dial(t, startProxy(t, &Server{Router: router}))
	for _, path := range []string{"/ok", "/fail"} {
		c.send("GET " + path + " HTTP/1.1\r\nHost: web.test\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("Set-Cookie"); got != "k=v; Max-Age=5" {
			t.Fatalf("%s: Set-Cookie %q, want the Upstream's field", path, got)
		}
	}
	// Responded runs once the response is relayed, so it may come just after the client read it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		router.mu.Lock()
		got := slices.Clone(router.statuses)
		router.mu.Unlock()
		if slices.Equal(got, []int{200, 503}) {
			return
		}
		if len(got) >= 2 || time.Now().After(deadline) {
			t.Fatalf("Responded saw %v, want [200 503]", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
