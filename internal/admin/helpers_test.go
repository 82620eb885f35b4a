package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/resolve"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// stackConfig is the registry the tests serve: a live service on a real backend, a service whose
// only endpoint refuses connections, an idle one with locality and weights, a DNS one, a NONE
// one, one exported only to another namespace, and a second entry for api.example.com that the
// first shadows.
const stackConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: BACKEND}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dead}
spec:
  hosts: [dead.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: idle}
spec:
  hosts: [idle.example.com]
  ports: [{number: 8443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, weight: 3, locality: us-east/zone-a/rack-1}
  - {address: 10.0.0.2, weight: 1, locality: eu-west/zone-b}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
  endpoints: [{address: db.internal.example}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anywhere}
spec:
  hosts: [pass.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: shop}
spec:
  hosts: [hidden.example.com]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-copy, creationTimestamp: "2026-02-01T00:00:00Z"}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.2, ports: {http: BACKEND}}]
`

// stack is a real proxy in front of a real backend, with the admin API over both on loopback.
type stack struct {
	proxy   *proxy.Proxy
	forward string // forward proxy address
	admin   string // admin API base URL
	backend string // the backend's "127.0.0.1:port"
	// release lets every request held by the backend's /hold answer; releaseHeld closes it once.
	release     chan struct{}
	releaseOnce sync.Once
	level       *slog.LevelVar
	logs        *syncBuffer
}

// startStack starts the backend, the proxy and the admin server; edit adjusts the admin Config.
func startStack(t *testing.T, edit func(*Config)) *stack {
	t.Helper()
	s := &stack{release: make(chan struct{}), level: new(slog.LevelVar), logs: &syncBuffer{}}
	s.backend = serveBackend(t, s.release)
	_, port, _ := net.SplitHostPort(s.backend)
	order := 0
	docs, diags := config.Decode("stack.yaml", strings.NewReader(strings.ReplaceAll(stackConfig, "BACKEND", port)), "default", &order)
	res := compile.Documents(config.Result{Documents: docs, Diagnostics: diags, Read: len(docs), Files: 1}, 7)
	if n := res.Errors(); n > 0 {
		t.Fatalf("stack config has %d errors: %v", n, res.Diagnostics)
	}
	r, err := resolve.New(resolve.Config{Server: "127.0.0.1:1", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: s.level}))
	// Two failures in a row eject, so a test sees an ejection after two requests.
	health := balance.NewHealth(balance.HealthConfig{ConsecutiveFailures: 2, EjectFor: time.Hour})
	s.proxy = proxy.New(proxy.Config{Resolver: r, Logger: log, Health: health, Locality: "us-east/zone-a/rack-1"}, res.Snapshot)
	fwd := listen(t)
	go s.proxy.ServeForward(fwd)
	s.forward = fwd.Addr().String()
	t.Cleanup(func() {
		s.releaseHeld()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.proxy.Shutdown(ctx)
	})
	adm := listen(t)
	cfg := Config{
		NotReady:  func() []string { return nil },
		Snapshot:  s.proxy.Snapshot,
		Clusters:  func() []Cluster { return fromProxy(s.proxy.Clusters()) },
		Listeners: func() []Listener { return []Listener{{"forward_proxy", s.forward}, {"admin", adm.Addr().String()}} },
		Reload: func() ReloadStatus {
			at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			return ReloadStatus{Version: 7, LoadedAt: at, LastAttemptAt: at.Add(time.Minute), OK: false,
				Errors: []string{"stack.yaml:3: ServiceEntry default/bad: spec.hosts: must not be empty"}, Accepted: 1, Refused: 1}
		},
		Level:     s.level,
		Namespace: "default",
		Logger:    log,
	}
	if edit != nil {
		edit(&cfg)
	}
	srv := NewServer(cfg, Timeouts{})
	go srv.Serve(adm)
	t.Cleanup(func() { srv.Close() })
	s.admin = "http://" + adm.Addr().String()
	return s
}

// releaseHeld answers every request the backend holds, and those still to come.
func (s *stack) releaseHeld() { s.releaseOnce.Do(func() { close(s.release) }) }

// settle waits until no request is active at any endpoint: the engine reports a request done
// just after the client has the response, so counts read right after a response may lag it.
func (s *stack) settle(t *testing.T) {
	t.Helper()
	poll(t, "requests to finish", func() (bool, string) {
		for _, c := range s.proxy.Clusters() {
			for _, e := range c.Endpoints {
				if e.Counts.RqActive != 0 {
					return false, e.Address + " active"
				}
			}
		}
		return true, ""
	})
}

// fromProxy copies the proxy's cluster view into the admin API's, as cmd/meshentry does.
func fromProxy(cs []proxy.Cluster) []Cluster {
	var out []Cluster
	for _, c := range cs {
		ac := Cluster{Name: c.Name, Host: c.Host, Namespace: c.Namespace, Port: c.Port, Resolution: c.Resolution.String()}
		for _, e := range c.Endpoints {
			ac.Endpoints = append(ac.Endpoints, Endpoint{Address: e.Address, Hostname: e.Hostname, Unix: e.Unix, Weight: e.Weight,
				Region: e.Locality.Region, Zone: e.Locality.Zone, SubZone: e.Locality.Subzone, Network: e.Network,
				Priority: e.Priority, Ejected: e.Ejected, Failing: e.Failing, Counts: Counts(e.Counts)})
		}
		out = append(out, ac)
	}
	return out
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveBackend runs a real HTTP backend: /hold answers once release is closed, anything else at once.
func serveBackend(t *testing.T, release <-chan struct{}) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprintf(w, "backend %s %s", r.Host, r.URL.Path)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// get sends target through the forward proxy and returns the status.
func (s *stack) get(t *testing.T, target string) int {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: s.forward})}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// fetch asks the admin API for path with method and returns the status and body.
func (s *stack) fetch(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, string(b)
}

// getJSON decodes the admin API's answer to path into v, which must be 200 and nothing but JSON.
func (s *stack) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, body := s.fetch(t, "GET", path)
	if code != 200 {
		t.Fatalf("GET %s = %d %q", path, code, body)
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: %v in\n%s", path, err, body)
	}
}

// connect opens a CONNECT tunnel to authority through the forward proxy and returns it open.
func (s *stack) connect(t *testing.T, authority string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.forward)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		c.Close()
		t.Fatalf("CONNECT %s: %v %v", authority, resp, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// poll waits up to 5 s for cond, which reports what it saw when false.
func poll(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after 5s", what, saw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update to accept)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// syncBuffer is a log sink the tests read while the proxy writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
