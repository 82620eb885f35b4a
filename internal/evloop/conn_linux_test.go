package evloop

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// relayHandler is a Handler of the tests: it dials up when its client speaks, sends it what
// the client sent, writes the answer back and closes both.
type relayHandler struct {
	up, client *Conn
	upstream   netip.AddrPort
}

func (h *relayHandler) Ready(c *Conn, ev Events) {
	switch {
	case c == h.up && ev&Readable != 0:
		var b [256]byte
		if n, e := c.Read(b[:]); e == 0 && n > 0 {
			h.client.Write(b[:n])
			h.up.Close()
			h.client.Close()
		}
	case c == h.up:
		if e := c.SocketError(); e != 0 {
			h.client.Write([]byte("connect failed"))
			h.client.Close()
			c.Close()
		}
	case ev&Readable != 0 && h.up == nil:
		h.client = c
		var b [256]byte
		n, e := c.Read(b[:])
		if e != 0 || n == 0 {
			return
		}
		up, err := c.Dial(h.upstream, h)
		if err != nil {
			c.Close()
			return
		}
		h.up = up
		up.Write(b[:n]) // a connect in progress takes it into the socket's buffer, or fails
	}
}

func (h *relayHandler) Expired(c *Conn) { c.Close() }

func (h *relayHandler) Drain(c *Conn, now bool) {
	if now {
		c.Close()
	}
}

// TestServeRelaysThroughADial keeps a connection on the loop for a Handler that dials and
// relays one exchange: the Group counts it served and its dial, and holds nothing after.
func TestServeRelaysThroughADial(t *testing.T) {
	up := serve(t, func(c *net.TCPConn) {
		b := make([]byte, 64)
		n, _ := c.Read(b)
		c.Write(append([]byte("up: "), b[:n]...))
	})
	g := newGroup(t, Options{Loops: 1})
	addr := listenHead(t, g, func(Accepted, []byte, bool) Verdict {
		return Verdict{Target: Target{Serve: &relayHandler{upstream: up.addr}}}
	})
	c := dial(t, addr)
	c.Write([]byte("hello"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, _ := io.ReadAll(c)
	if string(got) != "up: hello" {
		t.Fatalf("got %q", got)
	}
	waitStats(t, g, func(s Stats) bool { return s.Served == 1 && s.Dials == 1 && s.Open == 0 })
}

// TestServeDeadlineAndDrain: a Conn's deadline fires Expired; a drain tells the Handler, which
// closes its client, and the Group's Shutdown then ends without cutting.
func TestServeDeadlineAndDrain(t *testing.T) {
	g := newGroup(t, Options{Loops: 1})
	drained := make(chan bool, 1)
	addr := listenHead(t, g, func(Accepted, []byte, bool) Verdict {
		return Verdict{Target: Target{Serve: deadlineHandler{d: 100 * time.Millisecond, drained: drained}}}
	})
	c := dial(t, addr)
	c.Write([]byte("x"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if got, _ := io.ReadAll(c); string(got) != "expired" || time.Since(start) > 2*time.Second {
		t.Fatalf("got %q after %v", got, time.Since(start))
	}
	idle := dial(t, addr)
	idle.Write([]byte("y"))
	waitStats(t, g, func(s Stats) bool { return s.Served == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if now := <-drained; now {
		t.Error("the drain was the final one")
	}
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, _ := io.ReadAll(idle); string(got) != "drained" {
		t.Errorf("the idle client read %q", got)
	}
}

// deadlineHandler sets a deadline at its first edge and answers at it, or at a drain.
type deadlineHandler struct {
	d       time.Duration
	drained chan bool
}

func (h deadlineHandler) Ready(c *Conn, ev Events) {
	var b [8]byte
	if n, e := c.Read(b[:]); e == 0 && n > 0 && h.d > 0 {
		if n == 1 && b[0] == 'x' {
			c.SetDeadline(h.d)
		}
	} else if e != unix.EAGAIN {
		c.Close()
	}
}

func (h deadlineHandler) Expired(c *Conn) {
	c.Write([]byte("expired"))
	c.Close()
}

func (h deadlineHandler) Drain(c *Conn, now bool) {
	h.drained <- now
	c.Write([]byte("drained"))
	c.Close()
}

// waitStats waits for the Group's counters to satisfy ok.
func waitStats(t *testing.T, g *Group, ok func(Stats) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(g.Stats()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Stats %+v", g.Stats())
		}
	}
}
