package evloop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// newGroup starts a Group that the test closes at its end.
func newGroup(t testing.TB, o Options) *Group {
	t.Helper()
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// server is an upstream on a loopback port that runs handle on a goroutine per connection.
type server struct {
	ln   net.Listener
	addr netip.AddrPort
	wg   sync.WaitGroup
}

// serve starts a server on 127.0.0.1 that the test stops (and waits for) at its end.
func serve(t testing.TB, handle func(c *net.TCPConn)) *server {
	t.Helper()
	return serveOn(t, "127.0.0.1:0", handle)
}

func serveOn(t testing.TB, addr string, handle func(c *net.TCPConn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				// EMFILE while TestAcceptBackoff holds the descriptor limit tight: the
				// connection waits in the backlog for the next try.
				time.Sleep(5 * time.Millisecond)
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// results routes every connection to addr and delivers each Result.
type results chan Result

func (r results) routeTo(addr netip.AddrPort) RouteFunc {
	return func(Accepted) (Target, bool) {
		return Target{Addr: addr, Done: func(res Result) { r <- res }}, true
	}
}

// next waits for one Result.
func (r results) next(t testing.TB) Result {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("no Result within 10s")
		return Result{}
	}
}

// listen relays the Group's new listener to upstream and returns its address.
func listen(t testing.TB, g *Group, route RouteFunc) string {
	t.Helper()
	addr, err := g.Listen(loopback, route)
	if err != nil {
		t.Fatal(err)
	}
	return addr.String()
}

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// exchange is one conversation through the relay: the upstream's side and the client's, and
// the bytes each direction must count.
type exchange struct {
	name     string
	upstream func(c *net.TCPConn) error
	client   func(c *net.TCPConn) error
	up, down int64
}

func exchanges() []exchange {
	request, greeting, answer := randomBytes(100<<10), []byte("220 ready\r\n"), randomBytes(40<<10)
	return []exchange{{
		name: "echo",
		upstream: func(c *net.TCPConn) error {
			if _, err := io.Copy(c, c); err != nil {
				return err
			}
			return c.CloseWrite()
		},
		client: func(c *net.TCPConn) error {
			return talk(c, request, request)
		},
		up: int64(len(request)), down: int64(len(request)),
	}, {
		name: "server first",
		upstream: func(c *net.TCPConn) error {
			if _, err := c.Write(greeting); err != nil {
				return err
			}
			return expectAll(c, request)
		},
		client: func(c *net.TCPConn) error {
			if err := expect(c, greeting); err != nil {
				return err
			}
			return talk(c, request, nil)
		},
		up: int64(len(request)), down: int64(len(greeting)),
	}, {
		name: "client closes write, still gets the answer",
		upstream: func(c *net.TCPConn) error {
			if err := expectAll(c, request); err != nil {
				return err
			}
			_, err := c.Write(answer)
			return err
		},
		client: func(c *net.TCPConn) error {
			return talk(c, request, answer)
		},
		up: int64(len(request)), down: int64(len(answer)),
	}, {
		name: "server closes first, client sees EOF",
		upstream: func(c *net.TCPConn) error {
			_, err := c.Write(answer)
			return err
		},
		client: func(c *net.TCPConn) error {
			return expectAll(c, answer)
		},
		down: int64(len(answer)),
	}}
}

// talk writes send, closes for writing and reads until the EOF, which must bring want.
func talk(c *net.TCPConn, send, want []byte) error {
	if _, err := c.Write(send); err != nil {
		return err
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	return expectAll(c, want)
}

// expect reads len(want) bytes, which must be want.
func expect(c net.Conn, want []byte) error {
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read %d bytes: %w", len(want), err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("read other bytes than sent")
	}
	return nil
}

// expectAll reads until the EOF, which must bring want.
func expectAll(c net.Conn, want []byte) error {
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("read %d bytes until EOF, want %d others", len(got), len(want))
	}
	return nil
}

func TestRelay(t *testing.T) {
	for _, x := range exchanges() {
		for _, clients := range []int{1, 100} {
			t.Run(fmt.Sprintf("%s/%d clients", x.name, clients), func(t *testing.T) {
				testExchange(t, x, clients)
			})
		}
	}
}

func testExchange(t *testing.T, x exchange, clients int) {
	up := serve(t, func(c *net.TCPConn) {
		if err := x.upstream(c); err != nil {
			t.Errorf("upstream: %v", err)
		}
	})
	g := newGroup(t, Options{})
	done := make(results, clients)
	addr := listen(t, g, done.routeTo(up.addr))
	var wg sync.WaitGroup
	for range clients {
		c := dial(t, addr)
		wg.Go(func() {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if err := x.client(c); err != nil {
				t.Errorf("client: %v", err)
			}
			c.Close()
		})
	}
	wg.Wait()
	for range clients {
		res := done.next(t)
		if res.ConnectErr != nil || res.Err != nil || res.Up != x.up || res.Down != x.down {
			t.Errorf("Result %+v, want up %d down %d without error", res, x.up, x.down)
		}
	}
	s := g.Stats()
	want := Stats{Accepted: int64(clients), Pairs: int64(clients), BytesUp: int64(clients) * x.up, BytesDown: int64(clients) * x.down}
	if s != want {
		t.Errorf("Stats %+v, want %+v", s, want)
	}
	g.Close() // the loops' fields are the test's to read once they ended
	for i, l := range g.loops {
		if l.bufferOverruns != 0 || l.buffersOut != 0 {
			t.Errorf("loop %d: %d times over 2 buffers a pair, %d still out", i, l.bufferOverruns, l.buffersOut)
		}
	}
}

// TestBackpressure moves 8 MiB each way to a client that reads slowly: the relay stops reading
// the upstream while the client's socket is full, so a pair never holds more than its two
// buffers.
func TestBackpressure(t *testing.T) {
	const size = 8 << 20
	up := serve(t, func(c *net.TCPConn) {
		if _, err := io.Copy(c, c); err != nil {
			t.Errorf("upstream: %v", err)
		}
		c.CloseWrite()
	})
	g := newGroup(t, Options{Loops: 1})
	done := make(results, 1)
	c := dial(t, listen(t, g, done.routeTo(up.addr)))
	c.SetDeadline(time.Now().Add(30 * time.Second))
	sent := randomBytes(size)
	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := c.Write(sent); err != nil {
			t.Errorf("client write: %v", err)
		}
		c.CloseWrite()
	})
	var got bytes.Buffer
	chunk := make([]byte, 64<<10)
	for {
		time.Sleep(time.Millisecond)
		n, err := c.Read(chunk)
		got.Write(chunk[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if !bytes.Equal(got.Bytes(), sent) {
		t.Fatalf("client read %d bytes, not the %d sent", got.Len(), size)
	}
	if res := done.next(t); res.Up != size || res.Down != size || res.Err != nil {
		t.Errorf("Result %+v, want %d each way", res, size)
	}
	g.Close() // the loop's fields are the test's to read once it ended
	l := g.loops[0]
	if l.buffersPeak > 2 || l.bufferOverruns != 0 || l.buffersOut != 0 {
		t.Errorf("buffers: %d at most, %d overruns, %d still out; want at most 2, 0, 0",
			l.buffersPeak, l.bufferOverruns, l.buffersOut)
	}
	if len(l.freeBufs) > maxFreeBuffers {
		t.Errorf("%d free buffers kept, over %d", len(l.freeBufs), maxFreeBuffers)
	}
}

// TestIPv6 relays an IPv6 client to an IPv6 upstream.
func TestIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	up := serveOn(t, "[::1]:0", func(c *net.TCPConn) { io.Copy(c, c); c.CloseWrite() })
	g := newGroup(t, Options{})
	done := make(results, 1)
	var seen Accepted
	addr, err := g.Listen(netip.MustParseAddrPort("[::1]:0"), func(a Accepted) (Target, bool) {
		seen = a
		return Target{Addr: up.addr, Done: func(r Result) { done <- r }}, true
	})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr.String())
	if err := talk(c, []byte("hello"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if res := done.next(t); res.Up != 5 || res.Down != 5 {
		t.Errorf("Result %+v", res)
	}
	if seen.Local != addr || seen.Remote != c.LocalAddr().(*net.TCPAddr).AddrPort() {
		t.Errorf("Accepted %+v, want local %v remote %v", seen, addr, c.LocalAddr())
	}
}

// TestParkCostsTwoPolls trades a byte each way with a pause between, so that the loop parks
// before each event: a park is one epoll_pwait that finds nothing and one after the wakeup,
// not a third before them.
func TestParkCostsTwoPolls(t *testing.T) {
	up := serve(t, func(c *net.TCPConn) { io.Copy(c, c) })
	g := newGroup(t, Options{Loops: 1})
	done := make(results, 1)
	c := dial(t, listen(t, g, done.routeTo(up.addr)))
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := []byte{0}
	for i := range 40 {
		b[0] = byte(i)
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, b); err != nil || b[0] != byte(i) {
			t.Fatalf("echo %d: %v %v", i, b, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	c.Close()
	done.next(t)
	g.Close()
	l := g.loops[0]
	if l.waits < 80 || l.polls > 2*l.waits+10 {
		t.Errorf("%d epoll_pwaits for %d waits: want at least 80 waits and at most 2 polls a wait", l.polls, l.waits)
	}
	t.Logf("%d epoll_pwaits for %d waits", l.polls, l.waits)
}
