package evloop

import (
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A Conn is a socket the caller serves itself on a loop's thread, with non-blocking reads and
// writes, a deadline and connects of its own: a protocol engine (HTTP/1.1 keep-alive, say) that
// the loop knows nothing of. A Target.Serve client is one, and so is each upstream it opens
// with Dial. Its Handler runs on the loop's goroutine: it must not block, and a Conn is used
// from there only.

// Conn is a socket served by a Handler on a loop: a Target.Serve client or an upstream Dial
// opened. Its methods must be called on the loop's thread, and none after Close or Handoff.
type Conn struct {
	l      *loop
	fd     int32
	h      Handler
	client bool // counted in Open, as a pair: a Serve client
	// at is the deadline on the loop's clock, 0 for none; idx is c's place in the loop's
	// deadline heap, -1 when out of it.
	at         time.Duration
	idx        int
	prev, next *Conn // the loop's list of Conns, for drain and teardown
	closed     bool
	serial     uint64 // which use of this Conn struct it is: they are reused
	// Remote and Local are the addresses of the socket: a Serve client's as accepted, a
	// dialled one's Remote the address dialled.
	Remote, Local netip.AddrPort
}

// connList is an intrusive doubly linked list of Conns around a sentinel.
type connList struct{ head Conn }

func (cl *connList) init() { cl.head.next, cl.head.prev = &cl.head, &cl.head }

func (cl *connList) first() *Conn {
	if cl.head.next == &cl.head {
		return nil
	}
	return cl.head.next
}

func (cl *connList) push(c *Conn) {
	last := cl.head.prev
	c.prev, c.next = last, &cl.head
	last.next = c
	cl.head.prev = c
}

func (cl *connList) remove(c *Conn) {
	if c.next == nil {
		return
	}
	c.prev.next = c.next
	c.next.prev = c.prev
	c.prev, c.next = nil, nil
}

// serveHead turns a head-phase pair into a Conn its Target.Serve's handler serves; the client
// stays registered, or is registered now, and stays counted in Open.
func (l *loop) serveHead(p *pair, h Handler) {
	unlink(p)
	fd, registered, acc := p.fd[client], p.registered, p.acc
	l.freePair(p)
	c := l.newConn(fd, h, true)
	c.Remote, c.Local = acc.Remote, acc.Local
	bump(&l.stats.served, 1)
	if registered {
		s := &l.slots[fd]
		s.pair, s.conn = nil, c
	} else if err := l.register(fd, slot{conn: c}); err != nil {
		bump(&l.stats.headErrors, 1)
		h.Drain(c, true) // the Handler releases what it holds for c
		c.Close()
		return
	}
	setNoDelay(fd)
	// The head is there already: the handler reads it at once, as it would at an edge.
	h.Ready(c, Readable)
}

func (l *loop) newConn(fd int32, h Handler, isClient bool) *Conn {
	var c *Conn
	if n := len(l.freeConns); n > 0 {
		c = l.freeConns[n-1]
		l.freeConns = l.freeConns[:n-1]
	} else {
		c = new(Conn)
	}
	l.serial++
	*c = Conn{l: l, fd: fd, h: h, client: isClient, idx: -1, serial: l.serial}
	l.conns.push(c)
	return c
}

// connEvent hands an edge of a Conn's socket to its Handler.
func (l *loop) connEvent(c *Conn, events uint32) {
	c.h.Ready(c, Events(events))
}

// Dial starts a non-blocking connect to addr on c's loop and returns its Conn, served by h:
// its first Writable or Hangup edge ends the connect (SocketError). An error means no socket
// is left open.
func (c *Conn) Dial(addr netip.AddrPort, h Handler) (*Conn, error) {
	l := c.l
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	fd, err := newSocket(addr.Addr())
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	bump(&l.stats.dials, 1)
	if e := sysConnect(fd, &l.sa, putSockaddr(&l.sa, addr)); e != 0 && e != unix.EINPROGRESS {
		unix.Close(int(fd))
		bump(&l.stats.connectFailures, 1)
		return nil, os.NewSyscallError("connect", e)
	}
	u := l.newConn(fd, h, false)
	u.Remote = addr
	// Registered after connect(2): before it, the unconnected socket would report a hang-up.
	if err := l.register(fd, slot{conn: u}); err != nil {
		u.Close()
		return nil, err
	}
	return u, nil
}

// Read is one non-blocking read(2); EAGAIN when there is nothing, n 0 with no error at the EOF.
func (c *Conn) Read(p []byte) (int, unix.Errno) {
	for {
		n, e := sysRead(c.fd, p)
		if e != unix.EINTR {
			return n, e
		}
	}
}

// Peek is Read without taking the bytes (MSG_PEEK).
func (c *Conn) Peek(p []byte) (int, unix.Errno) {
	for {
		n, e := sysPeek(c.fd, p)
		if e != unix.EINTR {
			return n, e
		}
	}
}

// Write is one non-blocking write(2); EAGAIN when the socket's buffer is full.
func (c *Conn) Write(p []byte) (int, unix.Errno) {
	for {
		n, e := sysWrite(c.fd, p)
		if e != unix.EINTR {
			return n, e
		}
	}
}

// SocketError reads and clears the socket's pending error: a connect's outcome.
func (c *Conn) SocketError() unix.Errno { return socketError(c.fd) }

// LocalAddr is the socket's local address (getsockname), for a guard against connects that
// reach the process's own listeners.
func (c *Conn) LocalAddr() (netip.AddrPort, unix.Errno) {
	if e := sysLocal(c.fd, &c.l.sa); e != 0 {
		return netip.AddrPort{}, e
	}
	return addrOf(&c.l.sa), 0
}

// Now is the loop's clock, read once per batch of events.
func (c *Conn) Now() time.Duration { return c.l.now }

// Draining reports whether the Group drains: a Handler finishes what is in flight.
func (c *Conn) Draining() bool { return c.l.draining }

// SetDeadline makes Expired fire once d from now has passed (coarsely, as the loop's other
// timers: up to a tick late); 0 or less clears it.
func (c *Conn) SetDeadline(d time.Duration) {
	l := c.l
	if d <= 0 {
		if c.idx >= 0 {
			l.timers.remove(c)
		}
		c.at = 0
		return
	}
	at := l.now + d
	if c.idx >= 0 && at-c.at < l.tick && at >= c.at {
		return // within a tick of the deadline set: not worth a heap fix
	}
	c.at = at
	l.timers.set(c)
}

// Close closes the socket; c is not to be used after.
func (c *Conn) Close() {
	if c.closed {
		return
	}
	l := c.l
	c.release()
	if c.client {
		l.open--
		l.g.open.Add(-1)
	}
	unix.Close(int(c.fd)) // the last descriptor of the file: epoll drops it too
	l.freeConn(c)
}

// Handoff takes a Serve client out of the loop as Target.Handoff does: serve runs on a pooled
// goroutine with the client as a net.Conn, every byte the Handler did not read still in its
// socket. c is not to be used after.
func (c *Conn) Handoff(serve func(net.Conn)) {
	if c.closed {
		return
	}
	l, fd := c.l, c.fd
	// The registration belongs to the open file description, which the net.Conn duplicates.
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, int(fd), nil)
	c.release()
	if c.client {
		l.open--
		l.g.open.Add(-1)
	}
	l.freeConn(c)
	l.handoff(fd, serve)
}

// release takes c off the loop's lists and its descriptor's slot.
func (c *Conn) release() {
	l := c.l
	c.closed = true
	if c.idx >= 0 {
		l.timers.remove(c)
	}
	l.conns.remove(c)
	l.forget(c.fd)
}

// maxFreeConns bounds a loop's free list of Conns.
const maxFreeConns = 256

func (l *loop) freeConn(c *Conn) {
	c.h = nil
	if len(l.freeConns) < maxFreeConns {
		l.freeConns = append(l.freeConns, c)
	}
}

// expireConns fires the deadlines that passed.
func (l *loop) expireConns() {
	for c := l.timers.top(); c != nil && c.at <= l.now; c = l.timers.top() {
		l.timers.remove(c)
		c.at = 0
		c.h.Expired(c)
	}
}

// drainConns tells every Conn of the loop that the Group drains, or stops (now). A Handler may
// close others (an upstream with its client) and a freed Conn may be reused at once, so the
// Conns are told from a snapshot, each by its serial.
func (l *loop) drainConns(now bool) {
	type told struct {
		c      *Conn
		serial uint64
	}
	var all []told
	for c := l.conns.first(); c != nil && c != &l.conns.head; c = c.next {
		all = append(all, told{c, c.serial})
	}
	for _, t := range all {
		c := t.c
		if c.closed || c.serial != t.serial {
			continue
		}
		c.h.Drain(c, now)
		if now && !c.closed && c.serial == t.serial {
			c.Close()
		}
	}
}

// LoopIndex is which loop of its Group c is on, 0 to Group.Loops()-1: a Handler keeps what
// belongs to a loop (idle upstream Conns, which only that loop's epoll reports) by it.
func (c *Conn) LoopIndex() int { return c.l.index }

// Loops is the number of loops of g.
func (g *Group) Loops() int { return len(g.loops) }
