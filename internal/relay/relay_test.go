package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/sniff"
	"github.com/meshentry/meshentry/internal/testutil/fds"
	"github.com/meshentry/meshentry/internal/testutil/netpair"
)

// tunnel is a real relay between a client and a backend, all on loopback: client ⇄ relay ⇄ backend.
type tunnel struct {
	client  net.Conn // the application's end
	backend net.Conn // the server's end
	done    chan result
}

type result struct {
	up, down int64
	err      error
}

// startTunnel relays between a fresh client connection and a fresh backend connection. wrap, when
// set, wraps the relay's client-side connection (to replay a prefix, say).
func startTunnel(t *testing.T, ctx context.Context, opt Options, wrap func(net.Conn) net.Conn) *tunnel {
	t.Helper()
	front := listen(t)
	back := listen(t)
	tn := &tunnel{done: make(chan result, 1)}
	accepted := make(chan net.Conn, 2)
	go func() {
		c, err := back.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	go func() {
		down, err := front.Accept()
		if err != nil {
			tn.done <- result{err: err}
			return
		}
		upstream, err := net.Dial("tcp", back.Addr().String())
		if err != nil {
			down.Close()
			tn.done <- result{err: err}
			return
		}
		if wrap != nil {
			down = wrap(down)
		}
		var res result
		res.up, res.down, res.err = Pipe(ctx, down, upstream, opt)
		tn.done <- res
	}()
	c, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tn.client = c
	tn.backend = <-accepted
	if tn.backend == nil {
		t.Fatal("backend accepted nothing")
	}
	t.Cleanup(func() {
		tn.client.Close()
		tn.backend.Close()
		tn.wait(t)
	})
	return tn
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// wait returns the relay's result, once.
func (tn *tunnel) wait(t *testing.T) result {
	t.Helper()
	select {
	case r, ok := <-tn.done:
		if !ok {
			return result{}
		}
		close(tn.done)
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("relay did not end")
		return result{}
	}
}

func TestPipeCarriesBytesAndHalfClose(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16) // 256 KiB: several splices
	tests := []struct {
		name   string
		prefix string
	}{
		{name: "relays a request and its answer between TCP sockets"},
		{name: "replays a sniffed prefix before the rest of the stream", prefix: "HELLO "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var wrap func(net.Conn) net.Conn
			if tc.prefix != "" {
				wrap = func(c net.Conn) net.Conn { return sniff.NewPrefixConn(c, []byte(tc.prefix)) }
			}
			tn := startTunnel(t, context.Background(), Options{IdleTimeout: 10 * time.Second}, wrap)
			go func() {
				tn.client.Write(payload)
				tn.client.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(tn.backend)
			if err != nil {
				t.Fatalf("backend read: %v", err)
			}
			want := append([]byte(tc.prefix), payload...)
			if !bytes.Equal(got, want) {
				t.Fatalf("backend got %d bytes, want %d", len(got), len(want))
			}
			// The client's FIN arrived as a FIN: the backend can still answer.
			if _, err := tn.backend.Write([]byte("answer")); err != nil {
				t.Fatal(err)
			}
			tn.backend.Close()
			answer, err := io.ReadAll(tn.client)
			if err != nil || string(answer) != "answer" {
				t.Fatalf("client got %q, %v; want the answer after its half-close", answer, err)
			}
			r := tn.wait(t)
			if r.err != nil || r.up != int64(len(want)) || r.down != 6 {
				t.Fatalf("Pipe = up %d down %d err %v; want up %d down 6 nil", r.up, r.down, r.err, len(want))
			}
		})
	}
}

func TestPipeIdleTimeout(t *testing.T) {
	t.Parallel()
	// Generous against a loaded machine: a byte moves every idle/4 in the keep-open case.
	const idle = 300 * time.Millisecond
	t.Run("closes both sides once no byte moved for the timeout", func(t *testing.T) {
		t.Parallel()
		tn := startTunnel(t, context.Background(), Options{IdleTimeout: idle}, nil)
		start := time.Now()
		r := tn.wait(t)
		if !errors.Is(r.err, ErrIdleTimeout) {
			t.Fatalf("Pipe err = %v, want ErrIdleTimeout", r.err)
		}
		if el := time.Since(start); el < idle-10*time.Millisecond || el > idle+time.Second {
			t.Fatalf("closed after %v, want about %v", el, idle)
		}
		assertClosed(t, tn.client)
		assertClosed(t, tn.backend)
	})
	t.Run("keeps a tunnel open while bytes keep moving in either direction", func(t *testing.T) {
		t.Parallel()
		tn := startTunnel(t, context.Background(), Options{IdleTimeout: idle}, nil)
		buf := make([]byte, 1)
		for i := range 8 { // 8 × idle/4 = 2 × idle in total
			time.Sleep(idle / 4)
			from, to := tn.client, tn.backend
			if i%2 == 1 {
				from, to = tn.backend, tn.client
			}
			from.Write([]byte{'x'})
			to.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := io.ReadFull(to, buf); err != nil {
				t.Fatalf("tunnel closed while in use (round %d): %v", i, err)
			}
		}
	})
	t.Run("never closes a tunnel when the timeout is zero", func(t *testing.T) {
		t.Parallel()
		tn := startTunnel(t, context.Background(), Options{}, nil)
		time.Sleep(2 * idle)
		tn.client.Write([]byte("y"))
		tn.backend.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := io.ReadFull(tn.backend, make([]byte, 1)); err != nil {
			t.Fatalf("tunnel without a timeout closed: %v", err)
		}
	})
}

func TestPipeEndsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	tn := startTunnel(t, ctx, Options{}, nil)
	cancel()
	if r := tn.wait(t); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Pipe err = %v, want context.Canceled", r.err)
	}
	assertClosed(t, tn.client)
}

func TestIdleTunnelHoldsNoPipes(t *testing.T) {
	// Not parallel: it counts the process's descriptors.
	before := fds.Now(t)
	tn := startTunnel(t, context.Background(), Options{}, nil)
	payload := bytes.Repeat([]byte("z"), 1<<20)
	go tn.client.Write(payload)
	if _, err := io.ReadFull(tn.backend, make([]byte, len(payload))); err != nil {
		t.Fatal(err)
	}
	go tn.backend.Write(payload)
	if _, err := io.ReadFull(tn.client, make([]byte, len(payload))); err != nil {
		t.Fatal(err)
	}
	// Idle now.
	now := fds.Settled(t, before)
	if now.Pipes > before.Pipes {
		t.Fatalf("idle tunnel holds %d pipe descriptors, want none", now.Pipes-before.Pipes)
	}
	// Two listeners, the client, the backend and the relay's two ends: the relay's share is its two
	// sockets.
	if got := now.Sockets - before.Sockets; got != 6 {
		t.Fatalf("%d new sockets for one tunnel, its two peers and listeners, want 6", got)
	}
}

// assertClosed checks that the relay closed its side of c: c reads end of stream or a reset.
func assertClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after the relay ended: %v", err)
	}
}

// connPair returns two connected ends: the relay's end and the peer's.
type connPair func(t *testing.T) (relayEnd, peer net.Conn)

func tcpPair(t *testing.T) (net.Conn, net.Conn) { return socketPair(t, "tcp", "127.0.0.1:0") }

func unixPair(t *testing.T) (net.Conn, net.Conn) {
	return socketPair(t, "unix", filepath.Join(t.TempDir(), "relay.sock"))
}

func socketPair(t *testing.T, network, addr string) (net.Conn, net.Conn) {
	peer, end := netpair.Sockets(t, network, addr)
	return end, peer
}

func memPair(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestPipeAcrossConnectionKinds(t *testing.T) {
	t.Parallel()
	payload := bytes.Repeat([]byte("kinds"), 100<<10) // 500 KiB: more than one buffer or pipe
	tests := []struct {
		name           string
		client, server connPair
	}{
		{name: "relays from a TCP socket to a unix socket through a pooled buffer", client: tcpPair, server: unixPair},
		{name: "relays from a unix socket to a TCP socket", client: unixPair, server: tcpPair},
		{name: "relays between connections without sockets", client: memPair, server: memPair},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, client := tc.client(t)
			b, server := tc.server(t)
			done := make(chan int64, 1)
			go func() {
				up, _, _ := Pipe(context.Background(), a, b, Options{IdleTimeout: 10 * time.Second})
				done <- up
			}()
			go func() {
				client.Write(payload)
				client.Close() // a socket's close is a FIN; a memory pipe's is its only end
			}()
			got, _ := io.ReadAll(server)
			if !bytes.Equal(got, payload) {
				t.Fatalf("server got %d bytes, want %d", len(got), len(payload))
			}
			server.Close()
			select {
			case up := <-done:
				if up != int64(len(payload)) {
					t.Fatalf("Pipe counted %d bytes up, want %d", up, len(payload))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Pipe did not return")
			}
		})
	}
}
