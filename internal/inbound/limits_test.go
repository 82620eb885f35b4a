package inbound

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// readEnd reads from c until it is closed and reports how long that took.
func readEnd(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server left the connection open")
	}
	return time.Since(start)
}

func TestInboundBoundsWhatAClientMayHold(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	be := startXFCCBackend(t)

	t.Run("closes a client that never finishes its handshake at the handshake timeout", func(t *testing.T) {
		t.Parallel()
		srv, addr := startInbound(t, Config{Target: be.addr, Identity: source(t, m.serverDir), HandshakeTimeout: 300 * time.Millisecond})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		readEnd(t, c)
		waitFor(t, "the timeout to be counted", func() bool { return srv.Stats().HandshakeTimeouts == 1 })
	})

	t.Run("closes connections beyond the cap when they are accepted, and counts them", func(t *testing.T) {
		t.Parallel()
		srv, addr := startInbound(t, Config{Target: be.addr, Identity: source(t, m.serverDir), MaxConnections: 1})
		first, err := dialTLS(t, addr, m.clientConfig(t, "http/1.1"))
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(first)
		if _, err := get(t, first, br, ""); err != nil {
			t.Fatal(err)
		}
		second, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		readEnd(t, second)
		waitFor(t, "the refusal to be counted", func() bool { return srv.Stats().RefusedAtCap == 1 })
		// The connection under the cap is unaffected.
		if _, err := get(t, first, br, ""); err != nil {
			t.Errorf("the connection under the cap failed: %v", err)
		}
	})
}

func TestInboundShutdownClosesPipesStillOpenAtItsDeadline(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	hold := make(chan struct{})
	target := tcpBackend(t, func(c net.Conn) {
		io.WriteString(c, "hello")
		select {
		case <-hold:
		case <-time.After(10 * time.Second):
		}
	})
	defer close(hold)
	s, err := New(Config{Target: target, Identity: source(t, m.serverDir), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	c, err := dialTLS(t, ln.Addr().String(), m.clientConfig(t, "istio"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read the banner: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown returned %v, want the deadline: the pipe was still open", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve returned %v, want nil after a drain", err)
	}
	readEnd(t, c)
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}
