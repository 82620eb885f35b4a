package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestDrainOnSignal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// act drives the signals and the parent; it returns once the drain should have begun.
		act      func(sigs chan<- os.Signal, cancelParent func(), stop func())
		second   bool // a further signal is sent after act
		wantExit int  // -1: exit must not be called
	}{
		{
			name:     "the first signal begins the drain and a second one exits at once with status 1",
			act:      func(sigs chan<- os.Signal, _, _ func()) { sigs <- syscall.SIGTERM },
			second:   true,
			wantExit: 1,
		},
		{
			name:     "one signal begins the drain and nothing more",
			act:      func(sigs chan<- os.Signal, _, _ func()) { sigs <- syscall.SIGINT },
			wantExit: -1,
		},
		{
			name:     "a signal during a drain the parent context began exits at once",
			act:      func(_ chan<- os.Signal, cancelParent, _ func()) { cancelParent() },
			second:   true,
			wantExit: 1,
		},
		{
			name:     "a signal after stop does nothing",
			act:      func(_ chan<- os.Signal, _, stop func()) { stop() },
			second:   true,
			wantExit: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent, cancelParent := context.WithCancel(context.Background())
			defer cancelParent()
			sigs := make(chan os.Signal, 2)
			exits := make(chan int, 1)
			var stderr syncBuffer
			ctx, stop := drainOnSignal(parent, sigs, func(code int) { exits <- code }, &stderr)
			var once sync.Once
			stopOnce := func() { once.Do(stop) }
			defer stopOnce()
			tt.act(sigs, cancelParent, stopOnce)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the context did not end")
			}
			if tt.second {
				sigs <- syscall.SIGINT
			}
			wait := 5 * time.Second
			if tt.wantExit < 0 {
				wait = 200 * time.Millisecond // long enough for a wrong exit to show up
			}
			select {
			case code := <-exits:
				if code != tt.wantExit {
					t.Errorf("exit(%d), want %d", code, tt.wantExit)
				}
			case <-time.After(wait):
				if tt.wantExit >= 0 {
					t.Fatalf("exit was not called after the second signal; stderr: %s", stderr.String())
				}
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine while another reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// echoListener echoes each connection back until the client closes it.
func echoListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln
}

// tcpEntry declares echo.internal:7000 as TCP on the echo listener's port.
func tcpEntry(port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.internal]
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
`, port)
}

// openTunnel opens a CONNECT tunnel to echo.internal:7000 through the forward proxy at addr.
func openTunnel(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprint(c, "CONNECT echo.internal:7000 HTTP/1.1\r\nHost: echo.internal:7000\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v, %v", resp, err)
	}
	return c, br
}

// echoes sends msg through the tunnel and reports whether it came back.
func echoes(c net.Conn, br *bufio.Reader, msg string) bool {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return false
	}
	line, err := br.ReadString('\n')
	return err == nil && line == msg+"\n"
}

func TestRunDrainsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	echo := echoListener(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(tcpEntry(echo.Addr().(*net.TCPAddr).Port)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	cmd := newRunCommand()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	const drainTimeout = 1500 * time.Millisecond
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0",
		adminAddr: "127.0.0.1:0", policy: "REGISTRY_ONLY", logLevel: "info", drain: drainFlags{timeout: drainTimeout}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan map[string]net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, cmd, f, func(m map[string]net.Addr) { addrs <- m }) }()
	var bound map[string]net.Addr
	select {
	case bound = <-addrs:
	case err := <-done:
		t.Fatalf("run returned early: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("run did not start")
	}
	admin, forward := bound["admin"], bound["forward proxy"].String()
	tunnel, br := openTunnel(t, forward)
	if code, _ := adminGet(t, "GET", admin, "/ready"); code != 200 {
		t.Fatalf("/ready before the drain = %d", code)
	}

	start := time.Now()
	cancel()
	t.Run("ready turns 503 at once while healthz stays 200", func(t *testing.T) {
		code, body := adminGet(t, "GET", admin, "/ready")
		if code != 503 || !strings.Contains(body, "draining") {
			t.Errorf("/ready during the drain = %d %q, want 503 naming the drain", code, body)
		}
		if code, _ := adminGet(t, "GET", admin, "/healthz"); code != 200 {
			t.Errorf("/healthz during the drain = %d, want 200", code)
		}
	})
	t.Run("the forward proxy refuses new connections", func(t *testing.T) {
		for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
			c, err := net.Dial("tcp", forward)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatal("the forward proxy still accepts 1s into the drain")
			}
		}
	})
	t.Run("the open tunnel keeps working during the drain", func(t *testing.T) {
		if !echoes(tunnel, br, "still there") {
			t.Error("the tunnel stopped carrying bytes during the drain")
		}
	})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after the drain, want nil (exit status 0)", err)
		}
	case <-time.After(drainTimeout + 8*time.Second):
		t.Fatal("run did not return after the drain timeout")
	}
	if d := time.Since(start); d < drainTimeout-50*time.Millisecond {
		t.Errorf("run returned %v into the drain, before the drain timeout %v held the tunnel", d, drainTimeout)
	}
	if echoes(tunnel, br, "after") {
		t.Error("the tunnel still works after the drain timeout")
	}
	if !strings.Contains(stderr.String(), "drain timeout reached") {
		t.Errorf("the log does not say the drain timed out:\n%s", stderr.String())
	}
}
