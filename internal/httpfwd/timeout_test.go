package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The timeouts of these tests: the keep-alive idle timeout is short, so that a pause the
// engine took as connection idleness (as it did, with one 60 s timeout for both) would cut
// the stream; the stream idle timeout sits between a pause that must pass and one that must
// not.
const (
	testIdle       = 150 * time.Millisecond
	testStreamIdle = 700 * time.Millisecond
	shortPause     = 350 * time.Millisecond // over testIdle, under testStreamIdle
	longPause      = 1200 * time.Millisecond
)

// pausingHandler answers after the pause given as ?head=, sends "a", pauses ?body=, sends "b".
func pausingHandler(w http.ResponseWriter, r *http.Request) {
	head, _ := time.ParseDuration(r.URL.Query().Get("head"))
	body, _ := time.ParseDuration(r.URL.Query().Get("body"))
	time.Sleep(head)
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "a")
	w.(http.Flusher).Flush()
	select {
	case <-time.After(body):
		io.WriteString(w, "b")
	case <-r.Context().Done():
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	t.Parallel()
	h1 := startBackend(t, pausingHandler)
	h2 := startH2CBackend(t, pausingHandler)
	tests := []struct {
		name       string
		proto      Protocol
		query      string
		wantStatus int
		wantBody   string // "" when the body must be cut
	}{
		{name: "waits out a response head slower than the idle timeout", query: "head=350ms", wantStatus: 200, wantBody: "ab"},
		{name: "relays a body pausing longer than the idle timeout", query: "body=350ms", wantStatus: 200, wantBody: "ab"},
		{name: "answers 504 to a response head slower than the stream idle timeout", query: "head=1200ms", wantStatus: 504},
		{name: "cuts a body pausing longer than the stream idle timeout", query: "body=1200ms", wantStatus: 200},
		{name: "waits out an h2c response head slower than the idle timeout", proto: H2C, query: "head=350ms", wantStatus: 200, wantBody: "ab"},
		{name: "relays an h2c body pausing longer than the idle timeout", proto: H2C, query: "body=350ms", wantStatus: 200, wantBody: "ab"},
		{name: "answers 504 to an h2c response head slower than the stream idle timeout", proto: H2C, query: "head=1200ms", wantStatus: 504},
		{name: "cuts an h2c body pausing longer than the stream idle timeout", proto: H2C, query: "body=1200ms", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := h1.addr()
			if tt.proto == H2C {
				addr = h2.addr()
			}
			pool := &Pool{}
			t.Cleanup(func() { pool.Close() })
			router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{Addr: addr, Protocol: tt.proto}, nil
			})
			srv := &Server{Router: router, Pool: pool, Limits: Limits{IdleTimeout: testIdle, StreamIdleTimeout: testStreamIdle}}
			c := dial(t, startProxy(t, srv))
			c.send("GET /?" + tt.query + " HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			switch {
			case tt.wantStatus != 200:
			case tt.wantBody == "" && err == nil:
				t.Errorf("body %q read whole, want it cut", body)
			case tt.wantBody != "" && (err != nil || string(body) != tt.wantBody):
				t.Errorf("body %q (%v), want %q", body, err, tt.wantBody)
			}
			c.nc.Close()
			var want uint64
			if tt.wantBody == "" {
				want = 1
			}
			waitFor(func() bool { return srv.Stats().StreamIdleTimeouts == want })
			if got := srv.Stats().StreamIdleTimeouts; got != want {
				t.Errorf("Stats().StreamIdleTimeouts = %d, want %d", got, want)
			}
		})
	}
}

func TestUpgradedConnectionsUseTheStreamIdleTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		pause    time.Duration
		pings    int // sent after the pause, one every shortPause/2
		wantData bool
	}{
		{name: "keeps an upgraded connection pausing longer than the idle timeout", pause: shortPause, pings: 1, wantData: true},
		{name: "closes an upgraded connection pausing longer than the stream idle timeout", pause: longPause, pings: 1},
		{name: "keeps an upgraded connection that moves one way only for longer than the stream idle timeout",
			pause: shortPause / 2, pings: 8, wantData: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
				time.Sleep(tt.pause)
				for i := range tt.pings {
					if i > 0 {
						time.Sleep(shortPause / 2)
					}
					io.WriteString(nc, "ping")
				}
				io.Copy(io.Discard, br)
			})
			srv := &Server{Router: staticRouter(be.addr()), Limits: Limits{IdleTimeout: testIdle, StreamIdleTimeout: testStreamIdle}}
			c := dial(t, startProxy(t, srv))
			c.send("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 101 ") {
				t.Fatalf("head %q (%v)", head, err)
			}
			buf := make([]byte, 4*tt.pings)
			_, err := io.ReadFull(c.br, buf)
			if got := err == nil && string(buf) == strings.Repeat("ping", tt.pings); got != tt.wantData {
				t.Errorf("read %q (%v) after a pause of %v, want data: %v", buf, err, tt.pause, tt.wantData)
			}
			waitFor(func() bool { return tt.wantData || srv.Stats().StreamIdleTimeouts == 1 })
			if !tt.wantData && srv.Stats().StreamIdleTimeouts != 1 {
				t.Errorf("Stats().StreamIdleTimeouts = %d, want 1", srv.Stats().StreamIdleTimeouts)
			}
		})
	}
}

func TestKeepAliveIdleTimeout(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := &Server{Router: staticRouter(be.addr()), Limits: Limits{IdleTimeout: testIdle, StreamIdleTimeout: testStreamIdle}}
	c := dial(t, startProxy(t, srv))
	if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, resp.body)
	}
	t0 := time.Now()
	if !c.closed() {
		t.Fatal("an idle keep-alive connection stayed open")
	}
	if d := time.Since(t0); d > testStreamIdle {
		t.Errorf("idle connection closed after %v, want about the idle timeout %v", d, testIdle)
	}
	if got := srv.Stats().IdleTimeouts; got != 1 {
		t.Errorf("Stats().IdleTimeouts = %d, want 1", got)
	}
}
