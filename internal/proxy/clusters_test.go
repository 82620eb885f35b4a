package proxy

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// httpEntry declares echo.example.com:80 (HTTP) with one endpoint, 127.0.0.1 on port.
func httpEntry(port string) string {
	return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ` + port + `}}]
---
`
}

// countsOf returns the counters of address in cluster, and whether the cluster lists it.
func countsOf(p *Proxy, cluster, address string) (EndpointCounts, bool) {
	for _, c := range p.Clusters() {
		for _, e := range c.Endpoints {
			if c.Name == cluster && e.Address == address {
				return e.Counts, true
			}
		}
	}
	return EndpointCounts{}, false
}

func TestEndpointCountersSurviveAReload(t *testing.T) {
	t.Parallel()
	b := backend.HTTP(t, "b", "127.0.0.1:0")
	const cluster = "outbound|80||echo.example.com"
	_, port, _ := net.SplitHostPort(b.Addr)
	h := startProxy(t, httpEntry(port), Config{}, "")
	client := h.client(nil)
	for range 3 {
		resp, err := client.Get("http://echo.example.com/")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// The engine reports a request done just after the client has its response.
	deadline := time.Now().Add(5 * time.Second)
	for c, _ := countsOf(h.p, cluster, b.Addr); c.RqActive != 0 && time.Now().Before(deadline); c, _ = countsOf(h.p, cluster, b.Addr) {
		time.Sleep(10 * time.Millisecond)
	}
	steps := []struct {
		name       string
		config     string
		wantTotal  uint64
		wantListed bool
	}{
		{name: "counts each request routed to the endpoint", config: "", wantTotal: 3, wantListed: true},
		{name: "keeps the totals of an endpoint the new snapshot keeps", config: httpEntry(port) + deadEntry("other", "127.0.0.9"), wantTotal: 3, wantListed: true},
		{name: "drops the endpoint the new snapshot leaves out", config: deadEntry("other", "127.0.0.9"), wantListed: false},
		{name: "starts an endpoint that comes back at zero", config: httpEntry(port), wantTotal: 0, wantListed: true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.config != "" {
				h.p.Update(compileSnapshot(t, st.config))
			}
			c, listed := countsOf(h.p, cluster, b.Addr)
			if listed != st.wantListed || c.RqTotal != st.wantTotal || c.RqActive != 0 {
				t.Errorf("%s %s: listed %v, counts %+v; want listed %v with rq_total %d and none active",
					cluster, b.Addr, listed, c, st.wantListed, st.wantTotal)
			}
		})
	}
}

// TestCountingARequestDoesNotAllocate is not parallel: AllocsPerRun counts the whole process.
func TestCountingARequestDoesNotAllocate(t *testing.T) {
	h := startProxy(t, httpEntry("18080"), Config{}, "")
	router := &httpRouter{p: h.p}
	req := &httpfwd.RequestHead{Method: "GET", Host: "echo.example.com", Port: 80}
	up, rej := router.Route(req, 0)
	if rej != nil {
		t.Fatalf("Route: %+v", rej)
	}
	router.Done(up, nil)
	if n := testing.AllocsPerRun(200, func() {
		router.Route(req, 0)
		router.Done(up, nil)
	}); n != 0 {
		t.Fatalf("Route and Done allocate %.1f times per request", n)
	}
	if c, _ := countsOf(h.p, "outbound|80||echo.example.com", "127.0.0.1:18080"); c.RqTotal < 200 || c.RqActive != 0 {
		t.Fatalf("counts after the runs = %+v, want every request counted and none active", c)
	}
}

// BenchmarkRouteAndDone is one request's routing and report, counters included: compare with
// the same benchmark on a tree without them to see what counting costs.
func BenchmarkRouteAndDone(b *testing.B) {
	order := 0
	docs, _ := config.Decode("bench.yaml", strings.NewReader(httpEntry("18080")), "default", &order)
	p := New(Config{}, compile.Documents(config.Result{Documents: docs}, 1).Snapshot)
	defer p.Shutdown(context.Background())
	router := &httpRouter{p: p}
	req := &httpfwd.RequestHead{Method: "GET", Host: "echo.example.com", Port: 80}
	b.ReportAllocs()
	for b.Loop() {
		up, _ := router.Route(req, 0)
		router.Done(up, nil)
	}
}
