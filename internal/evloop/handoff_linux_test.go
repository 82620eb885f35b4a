package evloop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHandoff hands every other connection to Go: a handed-off client's first bytes, sent
// before the loop routed it, are still in its socket, and the Go side answers on it, while
// the relayed ones go on through the loop.
func TestHandoff(t *testing.T) {
	echo := serve(t, func(c *net.TCPConn) { copyBack(c) })
	g := newGroup(t, Options{Loops: 1})
	done := make(results, 4)
	served := make(chan error, 4)
	n := 0
	route := func(Accepted) (Target, bool) {
		n++ // the loop's thread alone runs the route of a one-loop Group
		if n%2 == 1 {
			// Blocking a loop is the test's own choice: the client's bytes arrive meanwhile.
			time.Sleep(20 * time.Millisecond)
			return Target{Handoff: func(c net.Conn) { served <- handoffEcho(c) }}, true
		}
		return done.routeTo(echo.addr)(Accepted{})
	}
	addr := listen(t, g, route)
	for i := range 4 {
		c := dial(t, addr)
		msg := []byte("sent before the route ran " + string(rune('a'+i)))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		want := msg
		if i%2 == 0 {
			want = append([]byte("go: "), msg...)
		}
		if err := expect(c, want); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
		if i%2 == 0 {
			if err := <-served; err != nil {
				t.Fatalf("connection %d, the Go side: %v", i, err)
			}
		} else {
			done.next(t)
		}
	}
	s := g.Stats()
	if s.Accepted != 4 || s.Handoffs != 2 || s.Open != 0 || s.Rejected != 0 {
		t.Errorf("Stats %+v, want 4 accepted, 2 handed off, none open", s)
	}
}

// handoffEcho reads what the client sent and answers it prefixed, as a Go server would.
func handoffEcho(c net.Conn) error {
	defer c.Close()
	if _, ok := c.(*net.TCPConn); !ok {
		return errors.New("the handed-off conn is not a *net.TCPConn")
	}
	if pending, err := unreadBytes(c.(*net.TCPConn)); err != nil || pending == 0 {
		return fmt.Errorf("%d bytes pending in the handed-off socket (%v), want the client's", pending, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	_, err = c.Write(append([]byte("go: "), buf[:n]...))
	return err
}

// unreadBytes is how many received bytes wait in c's socket (FIONREAD).
func unreadBytes(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ierr error
	err = rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) })
	return n, errors.Join(err, ierr)
}

// copyBack echoes c until its EOF.
func copyBack(c *net.TCPConn) {
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			c.Write(buf[:n])
		}
		if err != nil {
			c.CloseWrite()
			return
		}
	}
}

// TestRetry moves a pair whose connect failed to the address Retry gives, once per failure,
// until Retry says no: each failure is counted and reaches Retry, the last one Done.
func TestRetry(t *testing.T) {
	echo := serve(t, func(c *net.TCPConn) { copyBack(c) })
	tests := []struct {
		name      string
		addrs     func(t *testing.T) []netip.AddrPort // the first is Target.Addr, the rest retries
		wantErr   error
		wantStats Stats
	}{
		{"refused then echo", func(t *testing.T) []netip.AddrPort { return []netip.AddrPort{closedPort(t), echo.addr} },
			nil, Stats{Accepted: 1, Pairs: 1, ConnectFailures: 1}},
		{"timeout then echo", func(t *testing.T) []netip.AddrPort { return []netip.AddrPort{fullBacklog(t), echo.addr} },
			nil, Stats{Accepted: 1, Pairs: 1, ConnectTimeouts: 1}},
		{"refused twice", func(t *testing.T) []netip.AddrPort { return []netip.AddrPort{closedPort(t), closedPort(t)} },
			syscall.ECONNREFUSED, Stats{Accepted: 1, Pairs: 1, ConnectFailures: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs := tt.addrs(t)
			g := newGroup(t, Options{Loops: 1, ConnectTimeout: 300 * time.Millisecond})
			done := make(results, 1)
			var seen []error
			route := func(Accepted) (Target, bool) {
				next := 1
				return Target{Addr: addrs[0], Done: func(r Result) { done <- r }, Retry: func(err error) (netip.AddrPort, bool) {
					seen = append(seen, err)
					if next == len(addrs) {
						return netip.AddrPort{}, false
					}
					next++
					return addrs[next-1], true
				}}, true
			}
			c := dial(t, listen(t, g, route))
			msg := []byte("early bytes wait for the retried connect")
			c.Write(msg)
			if tt.wantErr == nil {
				if err := expect(c, msg); err != nil {
					t.Fatal(err)
				}
				c.CloseWrite()
			}
			expectClosed(t, c)
			res := done.next(t)
			if !errors.Is(res.ConnectErr, tt.wantErr) || (tt.wantErr == nil) != (res.ConnectErr == nil) {
				t.Errorf("ConnectErr %v, want %v", res.ConnectErr, tt.wantErr)
			}
			if len(seen) != len(addrs)-1+boolInt(tt.wantErr != nil) {
				t.Errorf("Retry saw %v", seen)
			}
			s := g.Stats()
			s.BytesUp, s.BytesDown = 0, 0
			if s != tt.wantStats {
				t.Errorf("Stats %+v, want %+v", s, tt.wantStats)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestCheck hands the guard the addresses the upstream connect really used, and a refusal
// ends the pair before a byte is relayed, without a retry.
func TestCheck(t *testing.T) {
	accepted := make(chan netip.AddrPort, 2)
	echo := serve(t, func(c *net.TCPConn) {
		accepted <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
		copyBack(c)
	})
	refused := errors.New("the guard said no")
	for _, refuse := range []bool{false, true} {
		g := newGroup(t, Options{Loops: 1})
		done := make(results, 1)
		var remote, local netip.AddrPort
		retried := false
		route := func(Accepted) (Target, bool) {
			return Target{Addr: echo.addr, Done: func(r Result) { done <- r },
				Retry: func(error) (netip.AddrPort, bool) { retried = true; return netip.AddrPort{}, false },
				Check: func(r, l netip.AddrPort) error {
					remote, local = r, l
					if refuse {
						return refused
					}
					return nil
				}}, true
		}
		c := dial(t, listen(t, g, route))
		msg := []byte("checked")
		c.Write(msg)
		if !refuse {
			if err := expect(c, msg); err != nil {
				t.Fatal(err)
			}
			c.CloseWrite()
		}
		expectClosed(t, c)
		res := done.next(t)
		if got := <-accepted; remote != echo.addr || local != got {
			t.Errorf("Check saw %v from %v, want %v from %v (the upstream's view)", remote, local, echo.addr, got)
		}
		switch {
		case refuse && (!errors.Is(res.ConnectErr, refused) || res.Up != 0 || retried):
			t.Errorf("refused: Result %+v, retried %v; want the guard's error, nothing relayed, no retry", res, retried)
		case !refuse && (res.ConnectErr != nil || res.Up != int64(len(msg))):
			t.Errorf("allowed: Result %+v", res)
		}
	}
}
