package httpfwd

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// closedAddr returns a loopback address nothing listens on: port 1, which no test binds, where a
// closed listener's port may be taken by a parallel test's server.
func closedAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:1"
}

func TestEngineErrorBodiesAreGeneric(t *testing.T) {
	t.Parallel()
	garbage := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 2x0 what\r\n\r\n")
		}
	})
	dead := closedAddr(t)
	tests := []struct {
		name     string
		upstream string
		request  string
		status   int
		reason   string
		clientID string // the id the client sent, or "" when the engine makes one
	}{
		{name: "answers a failed connect with 503 and no endpoint address", upstream: dead,
			request: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 503, reason: "upstream connect failed"},
		{name: "names the client's own request id", upstream: dead,
			request: "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-7\r\n\r\n", status: 503,
			reason: "upstream connect failed", clientID: "client-7"},
		{name: "answers a malformed response with 502", upstream: garbage.addr(),
			request: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: 502, reason: "malformed upstream response"},
		{name: "answers a malformed head with 400 and a fresh request id", upstream: dead,
			request: "GET / HTTP/1.1\r\n\r\n", status: 400, reason: "missing Host field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{Addr: tt.upstream, Key: "endpoint " + tt.upstream}, nil
			})
			srv := &Server{Router: router, Logger: logs.logger(), Limits: Limits{MaxAttempts: 1}}
			resp := dial(t, startProxy(t, srv)).roundTrip(tt.request)
			id := resp.Header.Get("X-Request-Id")
			if tt.clientID != "" && id != tt.clientID || id == "" {
				t.Fatalf("response x-request-id %q, want the client's %q or a generated one", id, tt.clientID)
			}
			want := "meshentry: " + tt.reason + "; request id " + id + "\n"
			if resp.StatusCode != tt.status || resp.body != want {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, resp.body, tt.status, want)
			}
			if line := logLine(logs.String(), id); line == "" {
				t.Errorf("no log line names request id %s in %q", id, logs.String())
			} else if tt.status != 400 && !strings.Contains(line, tt.upstream) {
				t.Errorf("log line %q does not name the upstream %s", line, tt.upstream)
			}
		})
	}
}

// logLine returns the first log line containing s.
func logLine(logs, s string) string {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

func TestRejectsCarryTheRequestID(t *testing.T) {
	t.Parallel()
	router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
		return Upstream{}, &Reject{Status: 502, Body: "no route\n", Header: []Field{{Name: "X-Request-Id", Value: "router's"}}}
	})
	c := dial(t, startProxy(t, &Server{Router: router}))
	resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-9\r\n\r\n")
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "client-9" || resp.body != "no route; request id client-9\n" {
		t.Errorf("got x-request-id %q and body %q, want client-9 once and the Router's body naming it", got, resp.body)
	}
}

func TestEngineErrorLogIsRateLimited(t *testing.T) {
	t.Parallel()
	var logs logBuffer
	srv := &Server{Router: staticRouter(closedAddr(t)), Logger: logs.logger(), Limits: Limits{MaxAttempts: 1}}
	c := dial(t, startProxy(t, srv))
	const requests = 3 * logBurst
	t0 := time.Now()
	for range requests {
		if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 503 {
			t.Fatalf("status %d, want 503", resp.StatusCode)
		}
	}
	time.Sleep(200 * time.Millisecond) // refills a token or two
	c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	// Each request takes two tokens (the attempt and the answer); a slow machine refills some.
	allowed := logBurst + int(time.Since(t0).Seconds()*logRate) + 1
	lines := strings.Count(logs.String(), `msg="upstream connect failed"`)
	if lines > allowed {
		t.Errorf("%d requests logged %d failure lines, want at most %d", requests+1, lines, allowed)
	}
	if got := srv.Stats().LogsSuppressed; got < uint64(2*requests-allowed) {
		t.Errorf("Stats().LogsSuppressed = %d, want at least %d", got, 2*requests-allowed)
	}
	if !strings.Contains(logs.String(), "suppressed=") {
		t.Errorf("no line says how many were suppressed")
	}
}
