package main

import (
	"bytes"
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

// register puts c in the loop's table and in epoll under a new generation.
func (l *hloop) register(c *hconn) bool {
	for int(c.fd) >= len(l.conns) {
		l.conns = append(l.conns, make([]*hconn, len(l.conns)+64)...)
	}
	l.gen++
	if l.gen == 0 {
		l.gen = 1
	}
	c.gen = l.gen
	l.conns[c.fd] = c
	ev := unix.EpollEvent{Events: evhEvents, Fd: c.fd, Pad: c.gen}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, int(c.fd), &ev); err != nil {
		l.conns[c.fd] = nil
		unix.Close(int(c.fd))
		return false
	}
	return true
}

func (l *hloop) newConn(fd int32) *hconn {
	var c *hconn
	if n := len(l.free); n > 0 {
		c = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		c = new(hconn)
	}
	*c = hconn{fd: fd, poolIdx: -1}
	return c
}

func (l *hloop) accept() {
	for {
		fd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(l.lfd), 0, 0, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
		if e != 0 {
			return // EAGAIN, or a failure the next event retries
		}
		// TCP_NODELAY is inherited from the listener.
		c := l.newConn(int32(fd))
		c.wr = true
		if !l.register(c) {
			l.free = append(l.free, c)
		}
	}
}

func (l *hloop) event(c *hconn, events uint32) {
	if events&unix.EPOLLIN != 0 || events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.rd = true
	}
	if events&unix.EPOLLOUT != 0 || events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.wr = true
	}
	if !c.upstream {
		l.drive(c)
		return
	}
	if c.connecting {
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			o := c.owner
			l.closeUp(c)
			if o != nil {
				o.u = nil
				l.fail(o, "502 Bad Gateway")
			}
			return
		}
		if events&unix.EPOLLOUT == 0 {
			return
		}
		c.connecting = false
	}
	if c.owner == nil {
		// Idle in the pool: the upstream closed it or sent what no request asked for, which is
		// what a MSG_PEEK before reuse would learn. An event left over from before it was
		// pooled (bytes already read) finds nothing to read, and the connection stays.
		l.checkIdle(c)
		return
	}
	l.drive(c.owner)
}

// checkIdle closes the idle upstream connection u unless it has nothing to read.
func (l *hloop) checkIdle(u *hconn) {
	if !u.rd {
		return
	}
	if _, e := rawRead(u.fd, l.scratch[:]); e == unix.EAGAIN {
		u.rd = false
		return
	}
	l.unpool(u)
	l.closeUp(u)
}

func (l *hloop) take() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b
	}
	return make([]byte, evhBufSize)
}

func (l *hloop) give(b *[]byte) {
	if *b != nil {
		l.bufs = append(l.bufs, (*b)[:evhBufSize])
		*b = nil
	}
}

func (l *hloop) closeUp(u *hconn) {
	l.conns[u.fd] = nil
	unix.Close(int(u.fd))
	u.owner = nil
	l.free = append(l.free, u)
}

func (l *hloop) unpool(u *hconn) {
	if i := u.poolIdx; i >= 0 {
		last := l.pool[len(l.pool)-1]
		l.pool[i], last.poolIdx = last, i
		l.pool = l.pool[:len(l.pool)-1]
		u.poolIdx = -1
	}
}

func (l *hloop) closeClient(c *hconn) {
	if c.u != nil {
		l.closeUp(c.u) // mid-exchange: not reusable
		c.u = nil
	}
	l.give(&c.in)
	l.give(&c.out)
	l.give(&c.rb)
	l.give(&c.cout)
	l.conns[c.fd] = nil
	unix.Close(int(c.fd))
	l.free = append(l.free, c)
}

// fail answers the client with status (when no response byte was sent) and closes it.
func (l *hloop) fail(c *hconn, status string) {
	if !c.headDone && len(c.cpend) == 0 {
		b := c.cout
		if b == nil {
			b = l.take()
			c.cout = b
		}
		b = append(b[:0], "HTTP/1.1 "...)
		b = append(b, status...)
		b = append(b, "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"...)
		rawWrite(c.fd, b) // best effort: the connection closes either way
	}
	l.closeClient(c)
}

// getUpstream gives c an upstream connection: the most recently pooled, or a new one, whose
// connect is under way.
func (l *hloop) getUpstream(c *hconn) bool {
	if n := len(l.pool); n > 0 {
		u := l.pool[n-1]
		l.pool = l.pool[:n-1]
		u.poolIdx = -1
		u.owner, c.u = c, u
		return true
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return false
	}
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&l.target)), unix.SizeofSockaddrInet4)
	if e != 0 && e != unix.EINPROGRESS {
		unix.Close(fd)
		return false
	}
	u := l.newConn(int32(fd))
	u.upstream, u.connecting, u.owner = true, e != 0, c
	u.wr = e == 0
	if !l.register(u) {
		l.free = append(l.free, u)
		return false
	}
	c.u = u
	return true
}

// drive moves c's exchange on as far as its sockets let it.
func (l *hloop) drive(c *hconn) {
	for {
		var more bool
		switch c.phase {
		case phHead:
			more = l.stepHead(c)
		case phReq:
			more = l.stepReq(c)
		case phResp:
			more = l.stepResp(c)
		}
		if !more {
			return
		}
	}
}

// stepHead reads and parses a request head; false when it must wait or c is gone.
func (l *hloop) stepHead(c *hconn) bool {
	if c.r == c.w {
		c.r, c.w = 0, 0
	} else {
		if i := bytes.Index(c.in[c.r:c.w], crlf2); i >= 0 {
			return l.startRequest(c, c.r+i+4)
		}
		if c.w-c.r >= evhBufSize-evhHeadRoom {
			l.fail(c, "431 Request Header Fields Too Large")
			return false
		}
		if c.w == len(c.in) {
			c.w = copy(c.in, c.in[c.r:c.w])
			c.r = 0
		}
	}
	if !c.rd {
		return false
	}
	if c.in == nil {
		c.in = l.take()
	}
	n, e := rawRead(c.fd, c.in[c.w:])
	switch {
	case e == unix.EAGAIN:
		c.rd = false
		if c.r == c.w {
			c.r, c.w = 0, 0
			l.give(&c.in) // idle: the buffer goes back to the loop
		}
		return false
	case e != 0 || n == 0:
		l.closeClient(c)
		return false
	}
	c.w += n
	if c.w < len(c.in) {
		c.rd = false // a short read on a stream socket drained it
	}
	return true
}

// connTokens records the names a Connection field lists in c.tokens; it reports close and
// keep-alive.
func (c *hconn) connTokens(v []byte) (close, keepAlive bool) {
	for len(v) > 0 {
		var t []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, nil
		}
		t = trimOWS(t)
		switch {
		case len(t) == 0:
		case foldEq(t, "close"):
			close = true
		case foldEq(t, "keep-alive"):
			keepAlive = true
		case c.ntokens < len(c.tokens):
			c.tokens[c.ntokens] = t
			c.ntokens++
		}
	}
	return
}

// listed reports whether the Connection fields named name.
func (c *hconn) listed(name []byte) bool {
	for _, t := range c.tokens[:c.ntokens] {
		if bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// startRequest parses the head in c.in[c.r:end] and writes the one for the upstream.
func (l *hloop) startRequest(c *hconn, end int) bool {
	h := c.in[c.r:end]
	le := bytes.Index(h, crlf)
	line := h[:le]
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		l.fail(c, "400 Bad Request")
		return false
	}
	method, target, proto := line[:sp1], line[sp1+1:sp2], line[sp2+1:]
	switch string(proto) { // no allocation: the conversion is only compared
	case "HTTP/1.1":
		c.http10 = false
	case "HTTP/1.0":
		c.http10 = true
	default:
		l.fail(c, "505 HTTP Version Not Supported")
		return false
	}
	c.isHead = string(method) == "HEAD"
	if string(method) == "CONNECT" {
		l.fail(c, "501 Not Implemented") // tunnels: not in the prototype
		return false
	}
	// Absolute-form (a forward proxy's request): the authority becomes the Host field and the
	// target its origin-form.
	var authority []byte
	if len(target) > 7 && foldEq(target[:7], "http://") {
		rest := target[7:]
		i := bytes.IndexAny(rest, "/?")
		if i < 0 {
			i = len(rest)
		}
		authority, target = rest[:i], rest[i:]
	}

	// First pass: the framing and the Connection field's list.
	c.ntokens = 0
	var cl int64
	haveCL, closeReq, keepAlive, requestID := false, false, false, []byte(nil)
	for p := le + 2; p < len(h)-2; {
		name, value, next, ok := nextField(h, p)
		if !ok {
			l.fail(c, "400 Bad Request")
			return false
		}
		p = next
		switch len(name) {
		case 10:
			if foldEq(name, "connection") {
				cls, ka := c.connTokens(value)
				closeReq, keepAlive = closeReq || cls, keepAlive || ka
			}
		case 12:
			if foldEq(name, "x-request-id") && requestID == nil && len(value) > 0 {
				requestID = value
			}
		case 14:
			if foldEq(name, "content-length") {
				n, ok := parseLength(value)
				if !ok || haveCL && n != cl {
					l.fail(c, "400 Bad Request")
					return false
				}
				cl, haveCL = n, true
			}
		case 17:
			if foldEq(name, "transfer-encoding") {
				l.fail(c, "501 Not Implemented") // chunked bodies: not in the prototype
				return false
			}
		}
	}
	c.closeAfter = closeReq || c.http10 && !keepAlive

	// Second pass: the head for the upstream.
	if c.out == nil {
		c.out = l.take()
	}
	b := append(c.out[:0], method...)
	b = append(b, ' ')
	if len(target) == 0 || target[0] != '/' {
		b = append(b, '/')
	}
	b = append(b, target...)
	b = append(b, " HTTP/1.1\r\n"...)
	if authority != nil {
		b = append(b, "Host: "...)
		b = append(b, authority...)
		b = append(b, "\r\n"...)
	}
	for p := le + 2; p < len(h)-2; {
		name, _, next, _ := nextField(h, p)
		line := h[p : next-2]
		p = next
		switch {
		case hop(name), c.ntokens > 0 && c.listed(name):
		case len(name) == 12 && foldEq(name, "x-request-id"):
		case authority != nil && len(name) == 4 && foldEq(name, "host"):
		default:
			b = append(b, line...)
			b = append(b, "\r\n"...)
		}
	}
	b = append(b, "Via: "...)
	b = append(b, l.via...)
	b = append(b, "\r\nx-request-id: "...)
	if requestID == nil {
		requestID = newReqID(&c.reqID)
	}
	b = append(b, requestID...)
	b = append(b, "\r\n\r\n"...)
	c.r = end

	// As much of the body as is here goes in the same write.
	k := min(int64(c.w-c.r), cl, int64(cap(b)-len(b)))
	b = append(b, c.in[c.r:c.r+int(k)]...)
	c.r += int(k)
	c.reqLeft = cl - k
	c.pend = b
	c.out = b
	c.phase = phReq
	c.headDone, c.cpend = false, nil
	if !l.getUpstream(c) {
		l.fail(c, "502 Bad Gateway")
		return false
	}
	return true
}

// stepReq writes the request to the upstream: the head (with what body came with it), then
// the rest of the body as the client sends it.
func (l *hloop) stepReq(c *hconn) bool {
	u := c.u
	if u.connecting {
		return false
	}
	if len(c.pend) > 0 {
		if !u.wr {
			return false
		}
		n, e := rawWrite(u.fd, c.pend)
		switch {
		case e == unix.EAGAIN:
			u.wr = false
			return false
		case e != 0:
			l.fail(c, "502 Bad Gateway") // a pooled connection the upstream just closed, say
			return false
		}
		c.pend = c.pend[n:]
		if len(c.pend) > 0 {
			u.wr = false
			return false
		}
		return true
	}
	if c.reqLeft > 0 {
		if c.r < c.w {
			k := int(min(c.reqLeft, int64(c.w-c.r)))
			c.pend = c.in[c.r : c.r+k]
			c.r += k
			c.reqLeft -= int64(k)
			return true
		}
		if !c.rd {
			return false
		}
		if c.in == nil {
			c.in = l.take()
		}
		c.r, c.w = 0, 0
		n, e := rawRead(c.fd, c.in)
		switch {
		case e == unix.EAGAIN:
			c.rd = false
			return false
		case e != 0 || n == 0:
			l.closeClient(c) // the client went away in the middle of its body
			return false
		}
		c.w = n
		if n < len(c.in) {
			c.rd = false
		}
		return true
	}
	l.give(&c.out)
	c.phase = phResp
	return true
}

// stepResp reads the response from the upstream and writes it to the client.
func (l *hloop) stepResp(c *hconn) bool {
	u := c.u
	if len(c.cpend) > 0 {
		if !c.wr {
			return false
		}
		n, e := rawWrite(c.fd, c.cpend)
		switch {
		case e == unix.EAGAIN:
			c.wr = false
			return false
		case e != 0:
			l.closeClient(c) // the client went away in the middle of the response
			return false
		}
		c.cpend = c.cpend[n:]
		if len(c.cpend) > 0 {
			c.wr = false
			return false
		}
		return true
	}
	if c.headDone {
		if c.respLeft == 0 {
			return l.finish(c)
		}
		if c.rr < c.rw {
			k := c.rw - c.rr
			if c.respLeft > 0 {
				k = int(min(int64(k), c.respLeft))
				c.respLeft -= int64(k)
			}
			c.cpend = c.rb[c.rr : c.rr+k]
			c.rr += k
			return true
		}
		c.rr, c.rw = 0, 0
	}
	if !u.rd {
		return false
	}
	if c.rb == nil {
		c.rb = l.take()
	}
	if c.rw == len(c.rb) {
		l.fail(c, "502 Bad Gateway") // a response head longer than the buffer
		return false
	}
	n, e := rawRead(u.fd, c.rb[c.rw:])
	switch {
	case e == unix.EAGAIN:
		u.rd = false
		return false
	case e != 0 || n == 0 && (!c.headDone || c.respLeft > 0):
		l.fail(c, "502 Bad Gateway") // closes the client even when the head was sent
		return false
	case n == 0: // the end of a body delimited by the connection's close
		c.respLeft = 0
		u.keep = false
		return true
	}
	c.rw += n
	if c.rw < len(c.rb) {
		u.rd = false
	}
	if !c.headDone {
		if i := bytes.Index(c.rb[c.rr:c.rw], crlf2); i >= 0 {
			return l.startResponse(c, c.rr+i+4)
		}
	}
	return true
}

// startResponse parses the response head in c.rb[c.rr:end] and writes the one for the client,
// with as much of the body as is here.
func (l *hloop) startResponse(c *hconn, end int) bool {
	h := c.rb[c.rr:end]
	le := bytes.Index(h, crlf)
	line := h[:le]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || end-c.rr > evhBufSize-evhHeadRoom {
		l.fail(c, "502 Bad Gateway")
		return false
	}
	status, ok := parseLength(line[9:12])
	if !ok || status < 200 {
		l.fail(c, "502 Bad Gateway") // 1xx and upgrades: not in the prototype
		return false
	}
	u := c.u
	c.ntokens = 0
	var cl int64
	haveCL, closeResp, keepAlive := false, false, false
	for p := le + 2; p < len(h)-2; {
		name, value, next, ok := nextField(h, p)
		if !ok {
			l.fail(c, "502 Bad Gateway")
			return false
		}
		p = next
		switch len(name) {
		case 10:
			if foldEq(name, "connection") {
				cls, ka := c.connTokens(value)
				closeResp, keepAlive = closeResp || cls, keepAlive || ka
			}
		case 14:
			if foldEq(name, "content-length") {
				n, ok := parseLength(value)
				if !ok || haveCL && n != cl {
					l.fail(c, "502 Bad Gateway")
					return false
				}
				cl, haveCL = n, true
			}
		case 17:
			if foldEq(name, "transfer-encoding") {
				l.fail(c, "502 Bad Gateway") // chunked responses: not in the prototype
				return false
			}
		}
	}
	u.keep = !closeResp && (line[7] == '1' || keepAlive)
	switch {
	case c.isHead || status == 204 || status == 304:
		c.respLeft = 0
	case haveCL:
		c.respLeft = cl
	default:
		c.respLeft = -1 // until the upstream closes
		u.keep = false
		c.closeAfter = true
	}

	if c.cout == nil {
		c.cout = l.take()
	}
	b := append(c.cout[:0], "HTTP/1.1 "...)
	b = append(b, line[9:]...)
	b = append(b, "\r\n"...)
	for p := le + 2; p < len(h)-2; {
		name, _, next, _ := nextField(h, p)
		line := h[p : next-2]
		p = next
		if hop(name) || c.ntokens > 0 && c.listed(name) {
			continue
		}
		b = append(b, line...)
		b = append(b, "\r\n"...)
	}
	switch {
	case c.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case c.http10:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.rr = end
	k := int64(min(c.rw-c.rr, cap(b)-len(b)))
	if c.respLeft >= 0 {
		k = min(k, c.respLeft)
		c.respLeft -= k
	}
	b = append(b, c.rb[c.rr:c.rr+int(k)]...)
	c.rr += int(k)
	c.cout, c.cpend = b, b
	c.headDone = true
	return true
}

// finish ends an exchange whose response was all written: the upstream goes back to the pool
// (or is closed), the buffers back to the loop, and the client on to its next request.
func (l *hloop) finish(c *hconn) bool {
	u := c.u
	c.u = nil
	u.owner = nil
	// Bytes past the response, or an event since the last read of it that a read has not
	// looked at, could be the upstream closing: such a connection is checked now, as no later
	// event of an edge-triggered socket would tell.
	if u.keep && c.rr == c.rw {
		u.poolIdx = len(l.pool)
		l.pool = append(l.pool, u)
		l.checkIdle(u)
	} else {
		l.closeUp(u)
	}
	l.give(&c.rb)
	l.give(&c.cout)
	c.rr, c.rw = 0, 0
	c.cpend, c.headDone = nil, false
	c.phase = phHead
	if c.closeAfter {
		l.closeClient(c)
		return false
	}
	if c.r == c.w {
		c.r, c.w = 0, 0
		if !c.rd {
			l.give(&c.in)
		}
	}
	return true
}
