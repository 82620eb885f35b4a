package evloop

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshentry/meshentry/internal/testutil/netpair"
)

// expectClosed checks that the relay closed c: a read ends with an EOF or a reset, no byte.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("read %d bytes, %v; want the relay's close", n, err)
	}
}

// closedPort is a loopback address that refuses connections.
func closedPort(t *testing.T) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// fullBacklog is a loopback port whose connects hang until their timeout (netpair.Hung).
func fullBacklog(t *testing.T) netip.AddrPort {
	addr, _, _ := netpair.Hung(t)
	return addr
}

func TestConnectFailures(t *testing.T) {
	tests := []struct {
		name    string
		target  func(t *testing.T) netip.AddrPort
		wantErr error
		want    Stats
	}{
		{"refused", closedPort, syscall.ECONNREFUSED, Stats{Accepted: 1, Pairs: 1, ConnectFailures: 1}},
		{"timeout", fullBacklog, ErrConnectTimeout, Stats{Accepted: 1, Pairs: 1, ConnectTimeouts: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target(t)
			const timeout = 300 * time.Millisecond
			g := newGroup(t, Options{ConnectTimeout: timeout})
			done := make(results, 1)
			c := dial(t, listen(t, g, done.routeTo(target)))
			start := time.Now()
			c.Write([]byte("early bytes, never relayed"))
			expectClosed(t, c)
			res := done.next(t)
			if !errors.Is(res.ConnectErr, tt.wantErr) || res.Err != nil || res.Up != 0 {
				t.Errorf("Result %+v, want ConnectErr %v", res, tt.wantErr)
			}
			if tt.wantErr == ErrConnectTimeout && time.Since(start) < timeout {
				t.Errorf("timed out after %v, before %v", time.Since(start), timeout)
			}
			if s := g.Stats(); s != tt.want {
				t.Errorf("Stats %+v, want %+v", s, tt.want)
			}
		})
	}
}

// TestClientResetDuringConnect ends a pair whose client reset while its upstream connect hung:
// at the reset, not at the connect timeout, so a client that gives up frees its place at once.
func TestClientResetDuringConnect(t *testing.T) {
	target := fullBacklog(t)
	const timeout = 5 * time.Second
	g := newGroup(t, Options{ConnectTimeout: timeout})
	done := make(results, 1)
	c := dial(t, listen(t, g, done.routeTo(target)))
	for deadline := time.Now().Add(timeout); g.Stats().Pairs == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the pair never began")
		}
	}
	start := time.Now()
	c.SetLinger(0)
	c.Close() // a reset
	res := done.next(t)
	if took := time.Since(start); took > timeout/2 {
		t.Errorf("the pair ended %v after the reset: at the connect timeout, not the reset", took)
	}
	if !errors.Is(res.Err, syscall.ECONNRESET) || res.ConnectErr != nil {
		t.Errorf("Result %+v, want Err ECONNRESET and no ConnectErr", res)
	}
	if s := g.Stats(); s.Open != 0 || s.ConnectTimeouts != 0 {
		t.Errorf("Stats %+v, want none open and no connect timeout", s)
	}
}

// TestIdleTimeout closes both ends of a pair that moved nothing for the idle timeout.
func TestIdleTimeout(t *testing.T) {
	const idle = 200 * time.Millisecond
	upstreamEOF := make(chan error, 1)
	up := serve(t, func(c *net.TCPConn) {
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		c.Write(buf)
		_, err := c.Read(buf)
		upstreamEOF <- err
	})
	g := newGroup(t, Options{IdleTimeout: idle})
	done := make(results, 1)
	c := dial(t, listen(t, g, done.routeTo(up.addr)))
	c.Write([]byte("hello"))
	if err := expect(c, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	quiet := time.Now()
	expectClosed(t, c)
	if waited := time.Since(quiet); waited < idle || waited > idle+time.Second {
		t.Errorf("closed after %v idle, want %v and a tick", waited, idle)
	}
	if err := <-upstreamEOF; err != io.EOF {
		t.Errorf("upstream read %v, want EOF", err)
	}
	if res := done.next(t); res.Err != ErrIdleTimeout || res.Up != 5 || res.Down != 5 {
		t.Errorf("Result %+v, want ErrIdleTimeout after 5 bytes each way", res)
	}
	if s := g.Stats(); s.IdleTimeouts != 1 || s.Open != 0 {
		t.Errorf("Stats %+v, want 1 idle timeout, none open", s)
	}
}

// TestMaxConnections closes the connection over the bound and takes one again once a pair
// ended.
func TestMaxConnections(t *testing.T) {
	up := serve(t, func(c *net.TCPConn) { io.Copy(c, c); c.CloseWrite() })
	g := newGroup(t, Options{MaxConnections: 1})
	done := make(results, 2)
	addr := listen(t, g, done.routeTo(up.addr))
	first := dial(t, addr)
	first.Write([]byte("one"))
	if err := expect(first, []byte("one")); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, dial(t, addr))
	if s := g.Stats(); s.Overflow != 1 || s.Open != 1 {
		t.Errorf("Stats %+v, want 1 overflow, 1 open", s)
	}
	first.Close()
	done.next(t)
	if err := talk(dial(t, addr), []byte("two"), []byte("two")); err != nil {
		t.Errorf("after the first ended: %v", err)
	}
	done.next(t)
}

func TestRouteRejects(t *testing.T) {
	g := newGroup(t, Options{})
	var seen Accepted
	addr := listen(t, g, func(a Accepted) (Target, bool) { seen = a; return Target{}, false })
	c := dial(t, addr)
	expectClosed(t, c)
	if s := g.Stats(); s != (Stats{Accepted: 1, Rejected: 1}) {
		t.Errorf("Stats %+v, want 1 accepted and rejected", s)
	}
	g.Close() // orders the loop's write of seen before the read
	if seen.Remote != c.LocalAddr().(*net.TCPAddr).AddrPort() || seen.Local.String() != addr {
		t.Errorf("route saw %+v, want remote %v local %v", seen, c.LocalAddr(), addr)
	}
}

func TestShutdown(t *testing.T) {
	tests := []struct {
		name     string
		clientGo bool // the client ends its pair during the Shutdown
		wantErr  error
		want     error // of Shutdown
	}{
		{"pairs end before the deadline", true, nil, nil},
		{"pairs cut at the deadline", false, ErrShutdown, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := serve(t, func(c *net.TCPConn) { io.Copy(c, c); c.CloseWrite() })
			g := newGroup(t, Options{})
			done := make(results, 1)
			addr := listen(t, g, done.routeTo(up.addr))
			c := dial(t, addr)
			c.Write([]byte("ping"))
			if err := expect(c, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			if tt.clientGo {
				time.AfterFunc(50*time.Millisecond, func() { c.CloseWrite() })
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if err := g.Shutdown(ctx); err != tt.want {
				t.Errorf("Shutdown: %v, want %v", err, tt.want)
			}
			if res := done.next(t); res.Err != tt.wantErr {
				t.Errorf("Result %+v, want Err %v", res, tt.wantErr)
			}
			expectClosed(t, c)
			if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				t.Error("dial after Shutdown succeeded")
			}
			if _, err := g.Listen(loopback, done.routeTo(up.addr)); err != ErrShutdown {
				t.Errorf("Listen after Shutdown: %v, want ErrShutdown", err)
			}
		})
	}
}

// TestAcceptBackoff runs a listener out of descriptors: the loop counts the error and rests
// the listener instead of spinning on its edge, then takes the waiting connection once
// descriptors are back.
func TestAcceptBackoff(t *testing.T) {
	up := serve(t, func(c *net.TCPConn) { io.Copy(c, c); c.CloseWrite() })
	g := newGroup(t, Options{Loops: 1})
	done := make(results, 1)
	addr := listen(t, g, done.routeTo(up.addr))
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	// RLIMIT_NOFILE bounds descriptor numbers: fill the holes below the highest open one, so
	// that the lowest free number is the only one under the limit, for the dial.
	free := fillDescriptorHoles(t)
	tight := limit
	tight.Cur = uint64(free) + 1
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &tight); err != nil {
		t.Skip(err)
	}
	c, err := net.Dial("tcp", addr)
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && g.Stats().AcceptErrors == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("dial under the tight limit: %v", err)
	}
	defer c.Close()
	if s := g.Stats(); s.AcceptErrors == 0 {
		t.Fatalf("Stats %+v, want an accept error", s)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := talk(c.(*net.TCPConn), []byte("back"), []byte("back")); err != nil {
		t.Fatalf("after the backoff: %v", err)
	}
	if res := done.next(t); res.Up != 4 || res.Err != nil {
		t.Errorf("Result %+v", res)
	}
}

// fillDescriptorHoles opens /dev/null until the lowest free descriptor is above every open one
// and returns that number; the fillers close when the test ends.
func fillDescriptorHoles(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip(err)
	}
	highest := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			highest = max(highest, n)
		}
	}
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fd > highest {
			syscall.Close(fd)
			return fd
		}
		t.Cleanup(func() { syscall.Close(fd) })
	}
}

// TestReusedDescriptor closes a registered socket and registers another that got its number,
// as an accept later in the same batch of events would: the old socket's event still in the
// batch must not reach the new owner.
func TestReusedDescriptor(t *testing.T) {
	l, err := newLoop(&Group{}, Options{}.withDefaults(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.closeDescriptors()
	first, _ := netpairFDs(t)
	old := &pair{}
	if err := l.register(first, slot{pair: old}); err != nil {
		t.Fatal(err)
	}
	stale := unix.EpollEvent{Events: unix.EPOLLIN, Fd: first, Pad: l.slots[first].gen}
	l.forget(first)
	syscall.Close(int(first))
	second, _ := netpairFDs(t)
	if second != first {
		t.Skipf("the new socket got descriptor %d, not %d", second, first)
	}
	reused := &pair{}
	if err := l.register(second, slot{pair: reused}); err != nil {
		t.Fatal(err)
	}
	if s := l.owner(&stale); s != nil {
		t.Errorf("the closed socket's event reached %p (the new pair is %p)", s.pair, reused)
	}
	fresh := unix.EpollEvent{Events: unix.EPOLLIN, Fd: second, Pad: l.slots[second].gen}
	if s := l.owner(&fresh); s == nil || s.pair != reused {
		t.Errorf("the new socket's event reached %v, want its pair", s)
	}
}

// netpairFDs is a connected pair of non-blocking stream sockets, closed at the test's end
// unless the test closed them.
func netpairFDs(t *testing.T) (int32, int32) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fds[0]); syscall.Close(fds[1]) })
	return int32(fds[0]), int32(fds[1])
}

// TestEarlyBytes relays what the client sent while the upstream connect was still in flight:
// the upstream's accept queue is full, so the connect waits for its SYN to be sent again
// (after about a second) once the queue was emptied.
func TestEarlyBytes(t *testing.T) {
	target, lfd, fillers := netpair.Hung(t)
	g := newGroup(t, Options{ConnectTimeout: 10 * time.Second})
	done := make(results, 1)
	c := dial(t, listen(t, g, done.routeTo(target)))
	if _, err := c.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the relay is connecting, the client's bytes wait
	for range fillers {
		fd, _, err := syscall.Accept(lfd)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
	}
	fd, _, err := syscall.Accept(lfd) // blocks until the relay's SYN comes again
	if err != nil {
		t.Fatal(err)
	}
	up := os.NewFile(uintptr(fd), "upstream")
	defer up.Close()
	got := make([]byte, 5)
	if _, err := io.ReadFull(up, got); err != nil || string(got) != "early" {
		t.Fatalf("upstream read %q, %v", got, err)
	}
	up.Write([]byte("late"))
	up.Close()
	c.CloseWrite()
	if err := expectAll(c, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if res := done.next(t); res.Up != 5 || res.Down != 4 || res.Err != nil || res.ConnectErr != nil {
		t.Errorf("Result %+v", res)
	}
}
