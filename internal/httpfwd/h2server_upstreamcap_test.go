package httpfwd

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Limits.MaxUpstreamConns is Envoy's max_connections circuit breaker for the HTTP/1.1 upstreams
// of HTTP/2 streams: a stream beyond it waits for a connection, and a wait that outlasts
// StreamIdleTimeout is answered 503, counted, without leaking the slot it waited for.
func TestHTTP2StreamsWaitAtTheUpstreamConnectionCap(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hold" {
			io.WriteString(w, "ok")
			return
		}
		// Holds the only connection the cap allows, making progress so that its own
		// stream does not time out meanwhile.
		for {
			io.WriteString(w, ".")
			w.(http.Flusher).Flush()
			select {
			case <-release:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	router := &hostRouter{routes: map[string]Upstream{"web.test:8080": {Addr: be.addr()}}}
	srv := &Server{Router: router, Limits: Limits{MaxUpstreamConns: 1, StreamIdleTimeout: time.Second}}
	proxy := startProxy(t, srv)
	client := h2cClient(t)
	get := func(path string) (*http.Response, error) {
		req, err := http.NewRequest("GET", "http://"+proxy+path, nil)
		if err != nil {
			return nil, err
		}
		req.Host = "web.test:8080"
		return client.Do(req)
	}
	held, err := get("/hold")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Body.Close()
	if _, err := io.ReadFull(held.Body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	t.Run("a stream that finds the cap reached and no connection freed in time gets 503", func(t *testing.T) {
		start := time.Now()
		resp, err := get("/next")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(body), "upstream connection limit reached") {
			t.Fatalf("got %d %q, want 503 naming the connection limit", resp.StatusCode, body)
		}
		if waited := time.Since(start); waited < 800*time.Millisecond {
			t.Fatalf("answered after %v, want a wait of about StreamIdleTimeout (1s)", waited)
		}
		if got := srv.HTTP2Stats().UpstreamOverflows; got != 1 {
			t.Fatalf("UpstreamOverflows %d, want 1", got)
		}
	})
	t.Run("once the connection is free the next stream is forwarded on it", func(t *testing.T) {
		close(release)
		if _, err := io.Copy(io.Discard, held.Body); err != nil {
			t.Fatal(err)
		}
		resp, err := get("/next")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("got %d %q, want 200 \"ok\"", resp.StatusCode, body)
		}
	})
}
