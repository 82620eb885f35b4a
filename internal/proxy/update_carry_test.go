package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// namedHTTPEntry declares host on port 80 with one STATIC endpoint 127.0.0.1:port.
func namedHTTPEntry(name, host string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
`, name, host, port)
}

// countingBackend serves HTTP on loopback, counting the connections it accepted; a request to
// /hold waits for release before it is answered.
type countingBackend struct {
	port    int
	conns   atomic.Int64
	held    chan struct{}
	release chan struct{}
}

func startCountingBackend(t *testing.T) *countingBackend {
	t.Helper()
	b := &countingBackend{held: make(chan struct{}, 1), release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				b.held <- struct{}{}
				<-b.release
			}
			io.WriteString(w, "ok "+r.Host)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

func TestUpdateLetsWhatRunsFinish(t *testing.T) {
	t.Parallel()
	be := startCountingBackend(t)
	echo := echoServer(t)
	echoPort := echo.Addr().(*net.TCPAddr).Port
	tunnelEntry := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tunnel}
spec:
  hosts: [tunnel.example.com]
  ports: [{number: 443, name: tcp, protocol: TCP, targetPort: ` + strconv.Itoa(echoPort) + `}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
`
	h := startProxy(t, namedHTTPEntry("api", "api.example.com", be.port)+tunnelEntry, Config{}, "")
	tunnel, status := h.connect(t, "tunnel.example.com:443")
	if status != 200 {
		t.Fatalf("CONNECT = %d", status)
	}
	defer tunnel.Close()
	c := h.client(nil)
	type result struct {
		code int
		body string
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := c.Get("http://api.example.com/hold")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{code: resp.StatusCode, body: string(b), err: err}
	}()
	select {
	case <-be.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the held request never reached the backend")
	}
	// Neither host is in the new snapshot.
	h.p.Update(compileSnapshot(t, namedHTTPEntry("other", "other.example.com", be.port)))
	close(be.release)

	t.Run("a request in flight finishes on the snapshot it started with", func(t *testing.T) {
		r := <-inFlight
		if r.err != nil || r.code != 200 || r.body != "ok api.example.com" {
			t.Fatalf("in-flight request: %d %q %v", r.code, r.body, r.err)
		}
	})
	t.Run("an established CONNECT tunnel stays up after its host is removed", func(t *testing.T) {
		tunnel.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(tunnel, "still there"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len("still there"))
		if _, err := io.ReadFull(tunnel, buf); err != nil || string(buf) != "still there" {
			t.Fatalf("echo over the tunnel: %q %v", buf, err)
		}
	})
	t.Run("a new request is matched against the new snapshot", func(t *testing.T) {
		if code, _, _ := get(t, c, "http://api.example.com/x"); code != 502 {
			t.Fatalf("removed host: %d, want 502", code)
		}
		if code, body, _ := get(t, c, "http://other.example.com/x"); code != 200 || body != "ok other.example.com" {
			t.Fatalf("added host: %d %q", code, body)
		}
	})
}

func TestUpdateKeepsPooledConnectionsOfEndpointsThatStay(t *testing.T) {
	t.Parallel()
	stays, gone := startCountingBackend(t), startCountingBackend(t)
	h := startProxy(t, namedHTTPEntry("stays", "stays.example.com", stays.port)+namedHTTPEntry("gone", "gone.example.com", gone.port), Config{}, "")
	c := h.client(nil)
	for _, host := range []string{"stays", "gone"} {
		if code, _, _ := get(t, c, "http://"+host+".example.com/"); code != 200 {
			t.Fatalf("%s: %d", host, code)
		}
	}
	waitIdle := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for h.p.pool.Idle() != want {
			if time.Now().After(deadline) {
				t.Fatalf("pool holds %d idle connections, want %d", h.p.pool.Idle(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitIdle(2)
	// The endpoint of "renamed" is the one of "stays": renaming a host keeps its connections.
	h.p.Update(compileSnapshot(t, namedHTTPEntry("renamed", "renamed.example.com", stays.port)))
	t.Run("closes the idle connection of the endpoint that is gone", func(t *testing.T) {
		waitIdle(1)
	})
	t.Run("reuses the idle connection of the endpoint that stays", func(t *testing.T) {
		if code, _, _ := get(t, c, "http://renamed.example.com/"); code != 200 {
			t.Fatalf("renamed: %d", code)
		}
		if n := stays.conns.Load(); n != 1 {
			t.Fatalf("the endpoint that stayed saw %d upstream connections, want the 1 pooled before the update", n)
		}
	})
}

func TestUpdateDropsTheDNSAnswersOfNamesThatAreGone(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	dns.Set("stays.internal", 300, "127.0.0.1")
	dns.Set("gone.internal", 300, "127.0.0.1")
	dnsEntry := func(name, endpoint string) string {
		return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ` + name + `}
spec:
  hosts: [` + name + `.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
  endpoints: [{address: ` + endpoint + `}]
---
`
	}
	h := startProxy(t, dnsEntry("stays", "stays.internal")+dnsEntry("gone", "gone.internal"), Config{}, dns.Addr)
	ctx := context.Background()
	for _, name := range []string{"stays.internal", "gone.internal"} {
		if _, err := h.p.cfg.Resolver.Lookup(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	h.p.Update(compileSnapshot(t, dnsEntry("stays", "stays.internal")))
	tests := []struct {
		name      string
		lookup    string
		wantQuery bool
	}{
		{name: "answers the name that stays from the cache", lookup: "stays.internal", wantQuery: false},
		{name: "asks the server again for the name that is gone", lookup: "gone.internal", wantQuery: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := dns.Queries()
			if _, err := h.p.cfg.Resolver.Lookup(ctx, tc.lookup); err != nil {
				t.Fatal(err)
			}
			if asked := dns.Queries() > before; asked != tc.wantQuery {
				t.Fatalf("lookup of %s queried the server: %v, want %v", tc.lookup, asked, tc.wantQuery)
			}
		})
	}
}
