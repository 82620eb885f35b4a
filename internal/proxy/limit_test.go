package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/admin"
)

// refusedAtOnce reports whether the proxy closed c without waiting for anything from it.
func refusedAtOnce(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnectionCap(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo.Addr().String())
	t.Run("closes a connection beyond the cap at once and counts it", func(t *testing.T) {
		t.Parallel()
		h := startProxy(t, echoEntry(port), Config{MaxConnections: 2}, "")
		for range 2 {
			tunnel, status := h.connect(t, "echo.internal:7000")
			if status != 200 {
				t.Fatalf("CONNECT under the cap = %d", status)
			}
			defer tunnel.Close()
		}
		if !refusedAtOnce(t, dial(t, h.addr)) {
			t.Fatal("a third connection was kept open with the cap at 2")
		}
		if got := h.p.Stats().RefusedAtCap; got != 1 {
			t.Fatalf("RefusedAtCap = %d, want 1", got)
		}
	})
	t.Run("counts captured and forward connections against one cap", func(t *testing.T) {
		t.Parallel()
		h := startProxy(t, echoEntry(port), Config{MaxConnections: 2}, "")
		capture := h.serveCapture(t, "10.99.0.1:7000")
		tunnel, status := h.connect(t, "echo.internal:7000")
		if status != 200 {
			t.Fatalf("CONNECT = %d", status)
		}
		defer tunnel.Close()
		roundTrip(t, dial(t, capture), []byte("captured"))
		if !refusedAtOnce(t, dial(t, capture)) {
			t.Fatal("a captured connection beyond the shared cap was kept open")
		}
	})
	t.Run("logs refusals at most once a second", func(t *testing.T) {
		t.Parallel()
		logs := &countingHandler{}
		h := startProxy(t, echoEntry(port), Config{MaxConnections: 1, Logger: slog.New(logs)}, "")
		tunnel, status := h.connect(t, "echo.internal:7000")
		if status != 200 {
			t.Fatalf("CONNECT = %d", status)
		}
		defer tunnel.Close()
		for range 20 {
			if !refusedAtOnce(t, dial(t, h.addr)) {
				t.Fatal("a connection beyond the cap was kept open")
			}
		}
		if got := h.p.Stats().RefusedAtCap; got != 20 {
			t.Fatalf("RefusedAtCap = %d, want 20", got)
		}
		if got := logs.count("refused connections at the connection cap"); got != 1 {
			t.Fatalf("%d log lines for 20 refusals within a second, want 1", got)
		}
	})
	t.Run("accepts again once a connection under the cap has closed", func(t *testing.T) {
		t.Parallel()
		h := startProxy(t, echoEntry(port), Config{MaxConnections: 1}, "")
		first, status := h.connect(t, "echo.internal:7000")
		if status != 200 {
			t.Fatalf("CONNECT = %d", status)
		}
		first.Close()
		var again net.Conn
		waitFor(t, func() bool {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				return false
			}
			fmt.Fprintf(c, "CONNECT echo.internal:7000 HTTP/1.1\r\nHost: echo.internal:7000\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
			if err != nil || resp.StatusCode != 200 {
				c.Close()
				return false
			}
			again = c
			return true
		}, "a CONNECT to succeed after the first tunnel closed")
		again.Close()
	})
}

func TestCapFollowsTheDescriptorLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		nofile uint64
		want   int
	}{
		{name: "keeps 128 descriptors and three per connection", nofile: 1 << 20, want: (1<<20 - 128) / 3},
		{name: "still serves under a tiny limit", nofile: 200, want: 33},
		{name: "never goes to zero", nofile: 3, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := capFromFDs(tc.nofile); got != tc.want {
				t.Fatalf("capFromFDs(%d) = %d, want %d", tc.nofile, got, tc.want)
			}
		})
	}
}

// countingHandler counts log records by message.
type countingHandler struct {
	mu   sync.Mutex
	msgs map[string]int
}

func (c *countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (c *countingHandler) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[string]int{}
	}
	c.msgs[r.Message]++
	return nil
}

func (c *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *countingHandler) WithGroup(string) slog.Handler      { return c }

func (c *countingHandler) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs[msg]
}

// floodChildEnv marks the process TestAdminAnswersWhileTheProxyIsFlooded starts.
const floodChildEnv = "MESHENTRY_TEST_FLOOD_CHILD"

// TestAdminAnswersWhileTheProxyIsFlooded floods a proxy process whose descriptor limit is 200 with
// 400 idle connections, from outside that process, and asks its admin API for /ready meanwhile.
// Without a cap the proxy's accepted connections take every descriptor and the admin listener
// cannot accept; with the default cap derived from the limit it keeps answering.
func TestAdminAnswersWhileTheProxyIsFlooded(t *testing.T) {
	if os.Getenv(floodChildEnv) == "1" {
		serveFloodChild(t)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAdminAnswersWhileTheProxyIsFlooded$")
	cmd.Env = append(os.Environ(), floodChildEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	var fwd, adm string
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if _, serr := fmt.Sscanf(line, "listening %s %s", &fwd, &adm); err != nil || serr != nil {
		t.Fatalf("child said %q: %v %v", line, err, serr)
	}
	go io.Copy(io.Discard, out) // the child's last words, so that it never writes to a closed pipe
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range 400 {
		if c, err := net.DialTimeout("tcp", fwd, time.Second); err == nil {
			flood = append(flood, c)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the child accept what it will
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + adm + "/ready")
	if err != nil {
		t.Fatalf("/ready while the proxy is flooded: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ready" {
		t.Fatalf("/ready = %d %q", resp.StatusCode, body)
	}
}

// serveFloodChild is the flooded process: a proxy with the default cap and an admin server, under
// a descriptor limit of 200, serving until its stdin closes.
func serveFloodChild(t *testing.T) {
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 200, Max: 200}); err != nil {
		t.Fatal(err)
	}
	h := startProxy(t, echoEntry("1"), Config{}, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := admin.NewServer(admin.Config{}, admin.Timeouts{})
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("listening %s %s\n", h.addr, ln.Addr())
	io.Copy(io.Discard, os.Stdin)
}
