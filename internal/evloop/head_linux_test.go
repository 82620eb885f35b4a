package evloop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// listenHead starts a head listener of g and returns its address.
func listenHead(t testing.TB, g *Group, head HeadFunc) string {
	t.Helper()
	addr, err := g.ListenHead(loopback, head)
	if err != nil {
		t.Fatal(err)
	}
	return addr.String()
}

// headCall is one call of a HeadFunc, as a test records it.
type headCall struct {
	head  string
	final bool
}

// untilMarker waits for marker in the head, then answers decide's verdict; every call goes
// to calls.
func untilMarker(marker string, calls chan<- headCall, decide func(head []byte, final bool) Verdict) HeadFunc {
	return func(_ Accepted, head []byte, final bool) Verdict {
		calls <- headCall{head: string(head), final: final}
		if !final && !bytes.Contains(head, []byte(marker)) {
			return Verdict{More: true}
		}
		return decide(head, final)
	}
}

// handoffAll reads everything a handed-off client sent until its EOF, first checking that all
// of it was still in the socket, and answers it prefixed.
func handoffAll(c net.Conn, pending int) error {
	defer c.Close()
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return errors.New("the handed-off conn is not a *net.TCPConn")
	}
	if n, err := unreadBytes(tc); err != nil || n != pending {
		return fmt.Errorf("%d bytes pending in the handed-off socket (%v), want %d", n, err, pending)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if _, err := c.Write(append([]byte("go: "), got...)); err != nil {
		return err
	}
	return tc.CloseWrite()
}

// TestHeadHandoff hands connections to Go with every byte the client sent still in the
// socket, decided on the first peek (no registration) or after a More (registered, then taken
// out of epoll).
func TestHeadHandoff(t *testing.T) {
	tests := []struct {
		name      string
		writes    []string
		wantWaits int64
	}{
		{name: "decided on the first peek", writes: []string{"GET / HTTP/1.1\r\n\r\n"}},
		{name: "decided after a More", writes: []string{"GET / HT", "TP/1.1\r\n\r\n"}, wantWaits: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGroup(t, Options{Loops: 1})
			calls := make(chan headCall, 8)
			served := make(chan error, 1)
			sent := strings.Join(tt.writes, "")
			all := len(sent)
			addr := listenHead(t, g, untilMarker("\r\n\r\n", calls, func([]byte, bool) Verdict {
				return Verdict{Target: Target{Handoff: func(c net.Conn) { served <- handoffAll(c, all) }}}
			}))
			c := dial(t, addr)
			for i, w := range tt.writes {
				if i > 0 {
					<-calls // the More of the write before
					time.Sleep(20 * time.Millisecond)
				}
				c.Write([]byte(w))
			}
			<-calls
			c.CloseWrite() // a FIN is no pending byte
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if err := expectAll(c, []byte("go: "+sent)); err != nil {
				t.Fatal(err)
			}
			s := g.Stats()
			if s.Accepted != 1 || s.Handoffs != 1 || s.HeadWaits != tt.wantWaits || s.Open != 0 {
				t.Errorf("Stats %+v, want 1 accepted and handed off, %d head waits, none open", s, tt.wantWaits)
			}
		})
	}
}

// TestHeadFinal ends the head phase without the HeadFunc's consent: at MaxHeadBytes, at the
// client's end of stream, at the head timeout; the last call is final and its close writes
// the Reject.
func TestHeadFinal(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name      string
		send      string
		closeSend bool
		wantHead  string
		wantStats Stats
		atLeast   time.Duration
	}{
		{name: "at MaxHeadBytes", send: "0123456789abcdefXYZ", wantHead: "0123456789abcdef",
			wantStats: Stats{Accepted: 1, Rejected: 1, HeadFull: 1}},
		{name: "at the client's end of stream", send: "CONN", closeSend: true, wantHead: "CONN",
			wantStats: Stats{Accepted: 1, Rejected: 1, HeadWaits: 1}},
		{name: "at the head timeout", send: "CONN", wantHead: "CONN", atLeast: timeout,
			wantStats: Stats{Accepted: 1, Rejected: 1, HeadWaits: 1, HeadTimeouts: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGroup(t, Options{Loops: 1, MaxHeadBytes: 16, HeadTimeout: timeout})
			finals := make(chan headCall, 1)
			addr := listenHead(t, g, func(_ Accepted, head []byte, final bool) Verdict {
				if !final {
					return Verdict{More: true}
				}
				finals <- headCall{head: string(head), final: final}
				return Verdict{More: true, Reject: []byte("bye\n")} // More is ignored when final
			})
			c := dial(t, addr)
			start := time.Now()
			c.Write([]byte(tt.send))
			if tt.closeSend {
				c.CloseWrite()
			}
			if got := <-finals; got.head != tt.wantHead {
				t.Errorf("final head %q, want %q", got.head, tt.wantHead)
			}
			if err := expect(c, []byte("bye\n")); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			if d := time.Since(start); d < tt.atLeast {
				t.Errorf("decided after %v, before %v", d, tt.atLeast)
			}
			if s := g.Stats(); s != tt.wantStats {
				t.Errorf("Stats %+v, want %+v", s, tt.wantStats)
			}
		})
	}
}

// TestHeadSilentClient decides a client that sends nothing: the deferred accept lets it in
// once its defer period passed, and the head timeout ends its wait with an empty final head.
func TestHeadSilentClient(t *testing.T) {
	t.Parallel()
	g := newGroup(t, Options{Loops: 1, HeadTimeout: 100 * time.Millisecond})
	finals := make(chan headCall, 1)
	addr := listenHead(t, g, func(_ Accepted, head []byte, final bool) Verdict {
		if final {
			finals <- headCall{head: string(head), final: final}
			return Verdict{Reject: []byte("silent\n")}
		}
		return Verdict{More: true}
	})
	c := dial(t, addr)
	select {
	case got := <-finals:
		if got.head != "" {
			t.Errorf("final head %q, want none", got.head)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a silent client was never decided")
	}
	if err := expect(c, []byte("silent\n")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c)
	if s := g.Stats(); s.HeadTimeouts != 1 || s.HeadWaits != 1 || s.Open != 0 {
		t.Errorf("Stats %+v, want 1 head wait ended by the head timeout", s)
	}
}

// TestHeadConsumeReply relays a connection past its head: the loop drops the consumed head,
// writes the Reply once the upstream connected, and relays the bytes the client sent beyond
// the head in the same write, and the rest, both ways; Result counts relayed bytes only.
func TestHeadConsumeReply(t *testing.T) {
	const head, pipelined, answer = "CONNECT x:1 HTTP/1.1\r\n\r\n", "pipelined", "answer"
	got := make(chan []byte, 1)
	up := serve(t, func(c *net.TCPConn) {
		b, _ := io.ReadAll(c)
		got <- b
		c.Write([]byte(answer))
		c.CloseWrite()
	})
	g := newGroup(t, Options{Loops: 1})
	done := make(results, 1)
	calls := make(chan headCall, 8)
	addr := listenHead(t, g, untilMarker("\r\n\r\n", calls, func(h []byte, _ bool) Verdict {
		return Verdict{Target: Target{Addr: up.addr, Consume: bytes.Index(h, []byte("\r\n\r\n")) + 4,
			Reply: []byte("HTTP/1.1 200 OK\r\n\r\n"), Done: func(r Result) { done <- r }}}
	}))
	c := dial(t, addr)
	c.Write([]byte(head + pipelined))
	c.Write([]byte(" and more"))
	c.CloseWrite()
	if err := expectAll(c, []byte("HTTP/1.1 200 OK\r\n\r\n"+answer)); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != pipelined+" and more" {
		t.Errorf("upstream got %q, want the bytes after the head", b)
	}
	res := done.next(t)
	if res.Up != int64(len(pipelined+" and more")) || res.Down != int64(len(answer)) || res.Err != nil || res.ConnectErr != nil {
		t.Errorf("Result %+v, want up %d down %d", res, len(pipelined+" and more"), len(answer))
	}
	if s := g.Stats(); s.BytesDown != int64(len(answer)) || s.Open != 0 {
		t.Errorf("Stats %+v, want only the relayed bytes down, none open", s)
	}
}

// TestHeadReplyBeforeBanner relays to an upstream that speaks first and then ends its side at
// once: the client reads the Reply, then the banner, then the end of stream, and Result counts
// the banner alone. Whether a round's banner is there when the connect completes (one write
// with the Reply) or comes after it (two) is the machine's timing; both must read the same.
func TestHeadReplyBeforeBanner(t *testing.T) {
	const reply, banner = "HTTP/1.1 200 OK\r\n\r\n", "220 ready\r\n"
	up := serve(t, func(c *net.TCPConn) {
		c.Write([]byte(banner))
		c.CloseWrite()
		io.Copy(io.Discard, c)
	})
	g := newGroup(t, Options{Loops: 1})
	done := make(results, 1)
	const rounds = 20
	addr := listenHead(t, g, untilMarker("\r\n\r\n", make(chan headCall, 2*rounds), func(h []byte, _ bool) Verdict {
		return Verdict{Target: Target{Addr: up.addr, Consume: len(h), Reply: []byte(reply), Done: func(r Result) { done <- r }}}
	}))
	for range rounds {
		c := dial(t, addr)
		c.Write([]byte("CONNECT x:1 HTTP/1.1\r\n\r\n"))
		if err := expectAll(c, []byte(reply+banner)); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		if res := done.next(t); res.Down != int64(len(banner)) || res.Up != 0 || res.Err != nil || res.ConnectErr != nil {
			t.Fatalf("Result %+v, want %d bytes down and none up", res, len(banner))
		}
		c.Close()
	}
}

// TestHeadPipelinedAfterWait relays the bytes that came with the end of a head the loop had
// waited for: their edge went to the head phase, so the relay must read them without one. The
// client then sends nothing more, and keeps its side open, so no later edge covers for a miss.
func TestHeadPipelinedAfterWait(t *testing.T) {
	const pipelined, answer = "pipelined", "answer"
	got := make(chan string, 1)
	up := serve(t, func(c *net.TCPConn) {
		b := make([]byte, len(pipelined))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := io.ReadFull(c, b)
		got <- string(b[:n])
		c.Write([]byte(answer))
		c.CloseWrite()
	})
	g := newGroup(t, Options{Loops: 1})
	addr := listenHead(t, g, untilMarker("\r\n\r\n", make(chan headCall, 8), func(h []byte, _ bool) Verdict {
		return Verdict{Target: Target{Addr: up.addr, Consume: bytes.Index(h, []byte("\r\n\r\n")) + 4,
			Reply: []byte("HTTP/1.1 200 OK\r\n\r\n")}}
	}))
	c := dial(t, addr)
	c.Write([]byte("CONNECT x:1 HTTP/1.1\r\n"))
	for deadline := time.Now().Add(5 * time.Second); g.Stats().HeadWaits == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the loop never waited for the rest of the head")
		}
	}
	c.Write([]byte("\r\n" + pipelined))
	if err := expect(c, []byte("HTTP/1.1 200 OK\r\n\r\n"+answer)); err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != pipelined {
		t.Errorf("upstream got %q, want %q", b, pipelined)
	}
}

// TestHeadRefuse writes the Refuse bytes once every retry failed, and not otherwise.
func TestHeadRefuse(t *testing.T) {
	g := newGroup(t, Options{Loops: 1})
	done := make(results, 1)
	var seen []error
	first, second := closedPort(t), closedPort(t)
	addr := listenHead(t, g, func(Accepted, []byte, bool) Verdict {
		retries := []netip.AddrPort{second}
		return Verdict{Target: Target{Addr: first, Consume: 3,
			Retry: func(err error) (netip.AddrPort, bool) {
				seen = append(seen, err)
				if len(retries) == 0 {
					return netip.AddrPort{}, false
				}
				a := retries[0]
				retries = retries[1:]
				return a, true
			},
			Refuse: func(err error) []byte { return []byte("refused: " + err.Error() + "\n") },
			Done:   func(r Result) { done <- r }}}
	})
	c := dial(t, addr)
	c.Write([]byte("abc"))
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatal(err)
	}
	if want := "refused: connect: connection refused\n"; string(got) != want {
		t.Errorf("client read %q, want %q", got, want)
	}
	res := done.next(t)
	if !errors.Is(res.ConnectErr, syscall.ECONNREFUSED) || len(seen) != 2 {
		t.Errorf("Result %+v after %d retries asked, want ECONNREFUSED after 2", res, len(seen))
	}
	if s := g.Stats(); s.ConnectFailures != 2 || s.Open != 0 {
		t.Errorf("Stats %+v, want 2 connect failures, none open", s)
	}
}

// TestHeadMaxConnections counts a connection in its head phase against MaxConnections.
func TestHeadMaxConnections(t *testing.T) {
	g := newGroup(t, Options{Loops: 1, MaxConnections: 1})
	calls := make(chan headCall, 8)
	addr := listenHead(t, g, untilMarker("\n", calls, func([]byte, bool) Verdict { return Verdict{} }))
	first := dial(t, addr)
	first.Write([]byte("waits"))
	<-calls
	second := dial(t, addr)
	second.Write([]byte("over the bound\n"))
	expectClosed(t, second)
	if s := g.Stats(); s.Overflow != 1 || s.Open != 1 || s.HeadWaits != 1 {
		t.Errorf("Stats %+v, want 1 overflow, 1 open in its head phase", s)
	}
	first.Write([]byte("\n"))
	expectClosed(t, first)
	third := dial(t, addr)
	third.Write([]byte("fits again\n"))
	expectClosed(t, third)
	if s := g.Stats(); s.Overflow != 1 || s.Rejected != 2 || s.Open != 0 {
		t.Errorf("Stats %+v, want the third taken and closed by its verdict", s)
	}
}

// TestHeadShutdown decides the connections still in their head phase when the drain begins,
// with a final call, and carries their verdict out: one handed off, one closed.
func TestHeadShutdown(t *testing.T) {
	g := newGroup(t, Options{Loops: 1})
	served := make(chan error, 1)
	waiting := make(chan struct{}, 2)
	addr := listenHead(t, g, func(_ Accepted, head []byte, final bool) Verdict {
		if !final {
			waiting <- struct{}{}
			return Verdict{More: true}
		}
		if bytes.HasPrefix(head, []byte("go")) {
			n := len(head)
			return Verdict{Target: Target{Handoff: func(c net.Conn) { served <- handoffAll(c, n) }}}
		}
		return Verdict{Reject: []byte("draining\n")}
	})
	handed, closed := dial(t, addr), dial(t, addr)
	handed.Write([]byte("go on"))
	closed.Write([]byte("stop"))
	<-waiting
	<-waiting
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v, want nil (no pair left to cut)", err)
	}
	if err := expect(closed, []byte("draining\n")); err != nil {
		t.Error(err)
	}
	expectClosed(t, closed)
	handed.CloseWrite()
	if err := expectAll(handed, []byte("go: go on")); err != nil {
		t.Error(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.Handoffs != 1 || s.Rejected != 1 || s.Open != 0 {
		t.Errorf("Stats %+v, want 1 handed off and 1 closed at the drain", s)
	}
}

// headPlan is what the HeadFunc of one FuzzHeadPhase input answers.
type headPlan struct {
	kind    int // 0 handoff, 1 relay, 2 close with a Reject, 3 relay with a Consume beyond the head
	wantLen int // More until the head holds that many bytes (or is final)
	consume int
}

// openFDs counts the process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	return len(ents)
}

// FuzzHeadPhase sends random heads in two writes and answers them with random verdicts: no
// panic, the bytes each verdict promises, no descriptor left open, and Stats that add up.
func FuzzHeadPhase(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), uint8(4), uint8(0), uint16(0), uint16(0))
	f.Add([]byte("CONNECT a:1 HTTP/1.1\r\n\r\nafter"), uint8(10), uint8(1), uint16(30), uint16(25))
	f.Add([]byte("x"), uint8(0), uint8(2), uint16(1), uint16(1))
	f.Add(bytes.Repeat([]byte("long"), 600), uint8(200), uint8(1), uint16(5000), uint16(10))
	f.Add([]byte("beyond"), uint8(3), uint8(3), uint16(6), uint16(0))
	f.Add(bytes.Repeat([]byte{0}, 1500), uint8(9), uint8(0), uint16(2000), uint16(0))
	up := serve(f, func(c *net.TCPConn) { copyBack(c) })
	g := newGroup(f, Options{Loops: 1, MaxHeadBytes: 1024, HeadTimeout: 2 * time.Second})
	var plan atomic.Pointer[headPlan]
	done := make(results, 1)
	served := make(chan []byte, 1)
	reply := []byte("200\n")
	addr := listenHead(f, g, func(_ Accepted, head []byte, final bool) Verdict {
		p := plan.Load()
		if !final && len(head) < p.wantLen {
			return Verdict{More: true}
		}
		onDone := func(r Result) { done <- r }
		switch p.kind {
		case 0:
			return Verdict{Target: Target{Handoff: func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				b, _ := io.ReadAll(c)
				served <- b
			}}}
		case 1:
			return Verdict{Target: Target{Addr: up.addr, Consume: min(p.consume, len(head)), Reply: reply, Done: onDone}}
		case 2:
			return Verdict{Reject: []byte("no\n")}
		}
		return Verdict{Target: Target{Addr: up.addr, Consume: len(head) + 1, Done: onDone}}
	})
	base := -1
	var dones, handoffs int64
	f.Fuzz(func(t *testing.T, head []byte, split uint8, kind uint8, want, consume uint16) {
		if len(head) == 0 {
			head = []byte("x") // an accept deferred for a client that never speaks waits seconds
		}
		if len(head) > 4096 {
			head = head[:4096]
		}
		if base < 0 {
			base = openFDs(t)
		}
		p := &headPlan{kind: int(kind % 4), wantLen: int(want) % (len(head) + 2), consume: int(consume)}
		plan.Store(p)
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		cut := int(split) % (len(head) + 1)
		c.Write(head[:cut])
		c.Write(head[cut:])
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client read: %v", err)
		}
		c.Close()
		switch p.kind {
		case 0:
			handoffs++
			if b := <-served; !bytes.Equal(b, head) {
				t.Errorf("the handed-off side read %d bytes, not the %d sent", len(b), len(head))
			}
		case 1, 3:
			dones++
			res := done.next(t)
			if p.kind == 3 {
				if !errors.Is(res.Err, errConsume) || len(got) != 0 {
					t.Errorf("bad Consume: Result %+v, client read %q", res, got)
				}
				break
			}
			// The consumed head is what the HeadFunc saw: at least what it waited for.
			if !bytes.HasPrefix(got, reply) || !bytes.HasSuffix(head, got[len(reply):]) ||
				len(got)-len(reply) > len(head) || res.Up != int64(len(got)-len(reply)) {
				t.Errorf("relay: client read %q of %q sent, Result %+v", got, head, res)
			}
		case 2:
			if !bytes.HasPrefix([]byte("no\n"), got) {
				t.Errorf("reject: client read %q", got)
			}
		}
		deadline := time.Now().Add(3 * time.Second)
		for g.Stats().Open != 0 || openFDs(t) > base {
			if time.Now().After(deadline) {
				t.Fatalf("Stats %+v, %d descriptors open, %d before", g.Stats(), openFDs(t), base)
			}
			time.Sleep(time.Millisecond)
		}
		s := g.Stats()
		if s.Handoffs != handoffs || s.Pairs+s.HeadErrors != dones || s.Accepted != s.Rejected+s.Handoffs+s.Pairs+s.HeadErrors || s.Overflow != 0 {
			t.Errorf("Stats %+v after %d handoffs and %d pairs", s, handoffs, dones)
		}
	})
}
