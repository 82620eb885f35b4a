package httpfwd

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// mirrorRecord is what a mirror backend saw of one copy.
type mirrorRecord struct{ host, path, body string }

func TestMirrorGetsACopyAndNeverDelaysTheOriginal(t *testing.T) {
	t.Parallel()
	seen := make(chan mirrorRecord, 16)
	holdOn := untilTestEnds(t)
	// The mirror takes its copy, then answers only when the test ends: a slow mirror.
	mirror := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen <- mirrorRecord{host: r.Host, path: r.RequestURI, body: string(body)}
		holdOn(r)
	})
	orig := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "original") })
	act := &Actions{
		Mirror:  &Mirror{Upstream: Upstream{Addr: mirror.addr()}, Percent: 100},
		Rewrite: &Rewrite{Prefix: "/a", URI: "/b"},
	}
	addr := startProxy(t, &Server{Router: &actionRouter{addrs: []string{orig.addr()}, act: act}})
	c := dial(t, addr)
	start := time.Now()
	resp := c.roundTrip("POST /a/x HTTP/1.1\r\nHost: svc.example:8080\r\nContent-Length: 4\r\n\r\nping")
	if resp.StatusCode != 200 || resp.body != "original" {
		t.Fatalf("original got %d %q", resp.StatusCode, resp.body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the original took %v behind a mirror that does not answer", took)
	}
	select {
	case got := <-seen:
		want := mirrorRecord{host: "svc.example-shadow:8080", path: "/b/x", body: "ping"}
		if got != want {
			t.Errorf("mirror saw %+v, want %+v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the mirror got no copy")
	}
}

func TestMirrorInFlightLimitDropsCopies(t *testing.T) {
	t.Parallel()
	holdOn := untilTestEnds(t)
	arrived := make(chan struct{}, 16)
	mirror := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		holdOn(r)
	})
	orig := startBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	act := &Actions{Mirror: &Mirror{Upstream: Upstream{Addr: mirror.addr()}, Percent: 100}}
	srv := &Server{Router: &actionRouter{addrs: []string{orig.addr()}, act: act}, Limits: Limits{MaxMirrors: 1}}
	addr := startProxy(t, srv)
	c := dial(t, addr)
	for i := range 3 {
		if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: svc\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	st := srv.Stats()
	if st.MirrorsSent != 1 || st.MirrorsDropped != 2 {
		t.Errorf("MirrorsSent %d, MirrorsDropped %d; want 1 and 2 with one slot held", st.MirrorsSent, st.MirrorsDropped)
	}
}

func TestShadowHost(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{name: "a bare host gets the suffix", in: "api.example", want: "api.example-shadow"},
		{name: "the suffix goes before a port", in: "api.example:8080", want: "api.example-shadow:8080"},
		{name: "an IPv6 literal without port keeps its brackets", in: "[::1]", want: "[::1]-shadow"},
		{name: "an IPv6 literal with port", in: "[::1]:80", want: "[::1]-shadow:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shadowHost(tt.in); got != tt.want {
				t.Errorf("shadowHost(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
