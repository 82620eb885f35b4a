package main

import (
	_ "expvar" // memstats (Mallocs) at /debug/vars, with the profiles
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	_ "net/http/pprof" // served only when EVHTTP_PPROF is set
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// serveEvHTTP is an HTTP/1.1 keep-alive proxy on raw epoll, to the one upstream: the ceiling of
// an HTTP engine written in Go once Go's netpoller is out of the path. One loop per GOMAXPROCS,
// each a goroutine locked to its thread with its own epoll instance and SO_REUSEPORT listener,
// edge-triggered, every socket call non-blocking and raw. Per request it does roughly what
// meshentry's HTTP/1.1 engine does for a route without actions: parse the head, rewrite an
// absolute-form target to origin-form, drop hop-by-hop fields (and those the Connection field
// names), add a Via field and an x-request-id, and on the way back parse the status line and
// the framing and drop the response's hop-by-hop fields. Idle upstream connections stay
// registered in epoll, so that an upstream closing one (or sending on it) is learnt from an
// event rather than from a MSG_PEEK before each reuse.
//
// A floor for measurement only: no timeouts, no bounds on connections, no routing (one
// upstream), no chunked bodies (a chunked request is answered 501, a chunked response 502),
// no 1xx, no upgrade, no retry, no loop detection; a request pipelined behind another waits in
// the buffer until the first response is written.
//
// Two knobs, for comparing the ways a loop can wait: EVHTTP_LOCK=0 leaves the loops' goroutines
// unlocked from their threads, and EVHTTP_WAIT=block waits in a blocking epoll_wait rather than
// parking on the netpoller. A locked goroutine that parks costs a P hand-off and a thread wake
// on each side of the park (stoplockedm, startlockedm), where an unlocked one is resumed by
// whichever thread's netpoll found its descriptor ready.
func serveEvHTTP(addr, upstream string) error {
	la, ua, err := parseAddrs(addr, upstream)
	if err != nil {
		return err
	}
	// SO_REUSEPORT would share the port with any other such listener: make sure it is free.
	probe, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	probe.Close()
	// EVHTTP_PPROF=ADDR serves net/http/pprof and expvar there, to profile the loops and count
	// their allocations (memstats.Mallocs).
	if a := os.Getenv("EVHTTP_PPROF"); a != "" {
		go func() { fmt.Fprintln(os.Stderr, "evhttp pprof:", http.ListenAndServe(a, nil)) }()
	}
	_, errs, err := startEvHTTP(la, ua)
	if err != nil {
		return err
	}
	return <-errs
}

// startEvHTTP opens a listener per GOMAXPROCS on la (the kernel's port, shared by all of them,
// when la's is 0) and starts a loop on each; it returns the address bound and the loops' errors.
func startEvHTTP(la, ua netip.AddrPort) (netip.AddrPort, <-chan error, error) {
	if !la.Addr().Is4() || !ua.Addr().Is4() {
		return la, nil, fmt.Errorf("evhttp: IPv4 addresses only")
	}
	n := runtime.GOMAXPROCS(0)
	errs := make(chan error, n)
	via := "1.1 evhttp-" + strconv.FormatUint(rand.Uint64()|1<<63, 16)
	for range n {
		lfd, err := reusePortListener(la)
		if err != nil {
			return la, nil, err
		}
		if la.Port() == 0 {
			sa, err := syscall.Getsockname(lfd)
			if err != nil {
				return la, nil, err
			}
			la = netip.AddrPortFrom(la.Addr(), uint16(sa.(*syscall.SockaddrInet4).Port))
		}
		l, err := newHLoop(lfd, ua, via)
		if err != nil {
			return la, nil, err
		}
		go func() { errs <- l.run() }()
	}
	return la, errs, nil
}

const (
	evhBufSize = 16 << 10
	// evhHeadRoom is what a forwarded head may add to the one received (Via, x-request-id,
	// Host, Connection): a head longer than the buffer less this is refused.
	evhHeadRoom = 512
	evhEvents   = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
)

// The phases of a client connection's exchange.
const (
	phHead = iota // reading a request head
	phReq         // writing the request (head, then body) to the upstream
	phResp        // reading the response from the upstream and writing it to the client
)

// hconn is one socket of a loop: a client connection with the state of its exchange, or an
// upstream connection (in use by owner, or idle in the pool).
type hconn struct {
	fd  int32
	gen int32
	// rd: the socket may have bytes (or EOF) to read; wr: a write may be taken. Edge-triggered:
	// an event sets them, a short read or a short (or refused) write clears them.
	rd, wr bool

	// Upstream connections.
	upstream   bool
	connecting bool
	owner      *hconn // the client this upstream serves; nil while it is idle in the pool
	poolIdx    int    // its index in the pool while idle, -1 otherwise
	keep       bool   // whether it may be pooled once the response is read

	// Client connections.
	phase      int
	in         []byte // what the client sent, in[r:w] not yet consumed
	r, w       int
	u          *hconn
	out        []byte // the request head for the upstream
	pend       []byte // bytes of the request not yet written upstream
	reqLeft    int64  // request body bytes not yet taken from the client
	rb         []byte // what the upstream sent, rb[rr:rw] not yet consumed
	rr, rw     int
	cout       []byte // the response head for the client
	cpend      []byte // bytes of the response not yet written to the client
	headDone   bool   // the response head is parsed
	respLeft   int64  // response body bytes not yet taken from the upstream; -1: until EOF
	closeAfter bool
	http10     bool
	isHead     bool
	reqID      [36]byte
	tokens     [8][]byte // the names the request's or response's Connection fields list
	ntokens    int
}

type hloop struct {
	ep, lfd   int
	conns     []*hconn // by descriptor
	gen       int32
	events    []unix.EpollEvent
	bufs      [][]byte
	free      []*hconn
	pool      []*hconn // idle upstream connections, the most recent last
	target    unix.RawSockaddrInet4
	via       string
	block     bool // EVHTTP_WAIT=block: wait in a blocking epoll_wait, as evpipe does
	scratch   [1]byte
	epFile    *os.File
	epConn    syscall.RawConn
	ready     int
	pollReady func(uintptr) bool
}

func newHLoop(lfd int, ua netip.AddrPort, via string) (*hloop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &hloop{ep: ep, lfd: lfd, via: via, events: make([]unix.EpollEvent, 256), block: os.Getenv("EVHTTP_WAIT") == "block"}
	l.target = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ua.Addr().As4()}
	p := (*[2]byte)(unsafe.Pointer(&l.target.Port))
	p[0], p[1] = byte(ua.Port()>>8), byte(ua.Port())
	if err := unix.SetsockoptInt(lfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return nil, err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, lfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return nil, err
	}
	// The epoll descriptor goes into Go's netpoller, to park on when there is nothing to do.
	if err := unix.SetNonblock(ep, true); err != nil {
		return nil, err
	}
	l.epFile = os.NewFile(uintptr(ep), "evhttp-epoll")
	if err := l.epFile.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("evhttp: epoll descriptor not pollable: %w", err)
	}
	if l.epConn, err = l.epFile.SyscallConn(); err != nil {
		return nil, err
	}
	l.pollReady = func(uintptr) bool { l.ready = l.poll(); return l.ready > 0 }
	return l, nil
}

func (l *hloop) run() error {
	if os.Getenv("EVHTTP_LOCK") != "0" {
		runtime.LockOSThread()
	}
	for {
		n := l.wait()
		for i := range n {
			ev := &l.events[i]
			if int(ev.Fd) == l.lfd {
				l.accept()
				continue
			}
			if int(ev.Fd) >= len(l.conns) {
				continue
			}
			// An event of a socket closed earlier in the batch, whose number an accept or a
			// connect may have given to another since, carries a stale generation.
			c := l.conns[ev.Fd]
			if c == nil || c.gen != ev.Pad {
				continue
			}
			l.event(c, ev.Events)
		}
	}
}

// wait returns the number of ready events. It polls first with a raw epoll_pwait, a plain
// system call the scheduler never sees, so that a busy loop runs without a hand-off; only when
// nothing is ready does it park on the Go netpoller, which watches the loop's epoll descriptor,
// as internal/evloop does (evpipe blocks in epoll_wait instead, as EVHTTP_WAIT=block does here):
// parking hands the P on at once, where a blocking epoll_wait keeps it until sysmon retakes it.
func (l *hloop) wait() int {
	if n := l.poll(); n > 0 {
		return n
	}
	if l.block {
		n, _ := unix.EpollWait(l.ep, l.events, -1)
		return max(n, 0)
	}
	l.ready = 0
	l.epConn.Read(l.pollReady)
	return l.ready
}

func (l *hloop) poll() int {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])),
		uintptr(len(l.events)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(n)
}

func rawRead(fd int32, p []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWrite(fd int32, p []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}
