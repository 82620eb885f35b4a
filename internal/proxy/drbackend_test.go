package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// drBackend is a real HTTP backend on loopback that counts what DestinationRule tests look at:
// accepted and open connections, requests, requests in flight. A request with X-Hold waits
// until release is called; status sets the answer's code.
type drBackend struct {
	name string
	ln   net.Listener
	srv  *http.Server

	accepts, open, maxOpen, hits, inflight atomic.Int64
	status                                 atomic.Int64
	// holdAll makes every request wait for release, not only those with X-Hold.
	holdAll atomic.Bool
	// held receives the backend's name when a held request arrives.
	held chan string

	mu      sync.Mutex
	release chan struct{}
}

// newDRBackend serves a drBackend on 127.0.0.1:0 until the test ends.
func newDRBackend(t *testing.T, name string, held chan string) *drBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &drBackend{name: name, ln: ln, held: held, release: make(chan struct{})}
	b.srv = &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second, ConnState: b.connState}
	go b.srv.Serve(ln)
	t.Cleanup(func() {
		b.unblock()
		b.srv.Close()
	})
	return b
}

func (b *drBackend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *drBackend) connState(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		b.accepts.Add(1)
		n := b.open.Add(1)
		for m := b.maxOpen.Load(); n > m && !b.maxOpen.CompareAndSwap(m, n); m = b.maxOpen.Load() {
		}
	case http.StateClosed, http.StateHijacked:
		b.open.Add(-1)
	}
}

// unblock lets every held request, present and future, finish.
func (b *drBackend) unblock() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.release:
	default:
		close(b.release)
	}
}

func (b *drBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	if b.holdAll.Load() || r.Header.Get("X-Hold") != "" {
		if b.held != nil {
			select {
			case b.held <- b.name:
			default:
			}
		}
		b.mu.Lock()
		rel := b.release
		b.mu.Unlock()
		select {
		case <-rel:
		case <-r.Context().Done():
		}
	}
	code := int(b.status.Load())
	if code == 0 {
		code = 200
	}
	w.WriteHeader(code)
	fmt.Fprintln(w, b.name)
}

// drDocs is a STATIC ServiceEntry host:80 with one loopback endpoint per backend and, when
// traffic is set, a DestinationRule whose trafficPolicy is that YAML (indented by four).
func drDocs(host string, traffic string, backends ...*drBackend) string {
	var eps []string
	for _, b := range backends {
		eps = append(eps, fmt.Sprintf("{address: 127.0.0.1, ports: {http: %d}}", b.port()))
	}
	docs := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [%s]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [%s]
`, host, strings.Join(eps, ", "))
	if traffic == "" {
		return docs
	}
	return docs + fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: dr}
spec:
  host: %s
  trafficPolicy:
%s
`, host, indent(traffic, "    "))
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

// pollFor polls cond every 10 ms until it holds or the deadline passes.
func pollFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// drClient is the harness's client, closed with the test.
func drClient(t *testing.T, h *harness) *http.Client {
	c := h.client(nil)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// fetch sends one GET through c with the given header fields ("Name: value") and returns the
// status, body (trimmed) and response header.
func fetch(t *testing.T, c *http.Client, url string, fields ...string) (int, string, http.Header) {
	t.Helper()
	code, body, hdr, err := do(c, url, fields...)
	if err != nil {
		t.Fatal(err)
	}
	return code, body, hdr
}

// do is fetch for goroutines other than the test's.
func do(c *http.Client, url string, fields ...string) (int, string, http.Header, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, ":")
		if k == "Host" {
			req.Host = strings.TrimSpace(v)
			continue
		}
		req.Header.Add(k, strings.TrimSpace(v))
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header, nil
}
