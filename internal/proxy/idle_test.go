package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/fds"
)

// echoEntry declares echo.internal (VIP 10.99.0.1) on a TCP port whose endpoint is port.
func echoEntry(port string) string {
	return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.internal]
  addresses: [10.99.0.1]
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: ` + port + `}}]
`
}

// roundTrip sends msg on c and reads it echoed back.
func roundTrip(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	go c.Write(msg)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo of %d bytes: %v", len(msg), err)
	}
	c.SetReadDeadline(time.Time{})
}

func TestIdleTunnelsAreClosed(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo.Addr().String())
	const idle = 200 * time.Millisecond
	tests := []struct {
		name string
		open func(t *testing.T, h *harness) net.Conn
	}{
		{name: "closes a CONNECT tunnel idle for the timeout", open: func(t *testing.T, h *harness) net.Conn {
			c, status := h.connect(t, "echo.internal:7000")
			if status != 200 {
				t.Fatalf("CONNECT = %d", status)
			}
			return c
		}},
		{name: "closes a captured TCP connection idle for the timeout", open: func(t *testing.T, h *harness) net.Conn {
			c, err := net.Dial("tcp", h.serveCapture(t, "10.99.0.1:7000"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, echoEntry(port), Config{TCPIdleTimeout: idle}, "")
			c := tc.open(t, h)
			defer c.Close()
			roundTrip(t, c, []byte("hello"))
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(idle + 2*time.Second))
			_, err := c.Read(make([]byte, 1))
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("tunnel still open %v after it went idle, want closed after %v", time.Since(start), idle)
			}
			if el := time.Since(start); el < idle-20*time.Millisecond {
				t.Fatalf("closed after %v, before the idle timeout %v", el, idle)
			}
			waitFor(t, func() bool { return h.p.Stats().IdleClosed == 1 }, "IdleClosed to count the close")
		})
	}
}

func TestIdleTunnelHoldsOnlyItsSockets(t *testing.T) {
	// Not parallel: it counts the process's descriptors.
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo.Addr().String())
	h := startProxy(t, echoEntry(port), Config{}, "")
	before := fds.Now(t)
	c, status := h.connect(t, "echo.internal:7000")
	if status != 200 {
		t.Fatalf("CONNECT = %d", status)
	}
	defer c.Close()
	roundTrip(t, c, bytes.Repeat([]byte("b"), 1<<20))
	now := fds.Settled(t, before)
	if now.Pipes > before.Pipes {
		t.Fatalf("an idle CONNECT tunnel holds %d pipe descriptors, want 0", now.Pipes-before.Pipes)
	}
	// The client's socket, the proxy's two and the echo server's. An earlier test's socket may
	// still close while this one counts, so fewer than 4 can show; more is the tunnel's own.
	if got := now.Sockets - before.Sockets; got > 4 {
		t.Fatalf("%d sockets for one idle tunnel and its two peers, want 4", got)
	}
}

// waitFor polls cond for up to 2 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
