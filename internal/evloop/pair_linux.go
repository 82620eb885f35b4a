package evloop

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The sides of a pair, which index its descriptors and its directions: dir[client] moves the
// client's bytes to the upstream.
const (
	client   = 0
	upstream = 1
)

var sideNames = [2]string{client: "client", upstream: "upstream"}

// pair is one relayed connection: the client's socket, the upstream's, and per direction the
// bytes read from one and not yet written to the other.
type pair struct {
	fd         [2]int32 // by side; -1 before the upstream socket exists
	dir        [2]direction
	connecting bool // the upstream connect is in flight
	// readable marks, while connecting, the sides that reported bytes (or their end) not yet
	// read: connected reads those only, as the others' next bytes bring an edge of their own.
	readable [2]bool
	done     func(Result)
	// connectedHook and retry are the Target's Connected and Retry; addr is the upstream
	// being connected to, or connected.
	connectedHook func(netip.AddrPort)
	check         func(remote, local netip.AddrPort) error
	retry         func(error) (netip.AddrPort, bool)
	addr          netip.AddrPort
	start         time.Duration // the accept, on the loop's clock
	stamp         time.Duration // the start of the connect, or the last activity (see touch)
	prev, next    *pair         // the loop's heads, connecting or idle list
	// The head phase of a ListenHead connection: heading until its HeadFunc decided;
	// registered once its client is in epoll (a More, or the pair's start).
	heading, registered bool
	headFn              HeadFunc
	acc                 Accepted
	headLen             int // the bytes the last peek saw
	// reply and refuse are the Target's Reply and Refuse.
	reply  []byte
	refuse func(error) []byte
}

// direction is the byte stream from one side to the other.
type direction struct {
	buf      []byte // from the loop's free list, held only while bytes are pending
	off, end int    // buf[off:end] is read and not yet written
	total    int64  // bytes written to the destination
	eof      bool   // the source read an EOF
	shut     bool   // the destination was shut for writing after the EOF: the direction is over
	blocked  bool   // the destination's write hit EAGAIN: wait for its EPOLLOUT edge
	short    bool   // the last read filled less than buf
	pre      int    // pending bytes that are no relayed bytes (a Reply): written, not counted
}

// startPair takes an accepted and routed client and starts its upstream connect.
func (l *loop) startPair(cfd int32, t Target) {
	p := l.newPair()
	p.fd = [2]int32{cfd, -1}
	p.start = l.now
	l.open++
	l.beginPair(p, t)
}

// beginPair starts the upstream connect of p, whose client is open and counted in l.open,
// registering the client unless its head phase did.
func (l *loop) beginPair(p *pair, t Target) {
	bump(&l.stats.pairs, 1)
	p.done, p.connectedHook, p.check, p.retry = t.Done, t.Connected, t.Check, t.Retry
	p.reply, p.refuse = t.Reply, t.Refuse
	p.connecting = true
	cfd := p.fd[client]
	setNoDelay(cfd) // best effort: a socket that refuses it still relays
	if !p.registered {
		if err := l.register(cfd, slot{pair: p, side: client}); err != nil {
			l.connecting.pushBack(p)
			l.finish(p, nil, fmt.Errorf("evloop: epoll client: %w", err))
			return
		}
		p.registered = true
	}
	l.connect(p, t.Addr)
}

// connect starts p's connect to addr, under a connect timeout of its own.
func (l *loop) connect(p *pair, addr netip.AddrPort) {
	p.stamp = l.now
	l.connecting.pushBack(p)
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	p.addr = addr
	if !addr.Addr().IsValid() {
		l.failConnect(p, fmt.Errorf("evloop: invalid target %v", addr))
		return
	}
	ufd, err := newSocket(addr.Addr())
	if err != nil {
		l.failConnect(p, os.NewSyscallError("socket", err))
		return
	}
	p.fd[upstream] = ufd
	p.readable[upstream] = false // a retry's new socket
	e := sysConnect(ufd, &l.sa, putSockaddr(&l.sa, addr))
	if e != 0 && e != unix.EINPROGRESS {
		l.failConnect(p, os.NewSyscallError("connect", e))
		return
	}
	// Registered after connect(2): before it, the closed socket would report a hang-up.
	if err := l.register(ufd, slot{pair: p, side: upstream}); err != nil {
		l.finish(p, nil, fmt.Errorf("evloop: epoll upstream: %w", err))
		return
	}
	if e == 0 {
		l.connected(p)
	}
}

func (l *loop) failConnect(p *pair, err error) {
	bump(&l.stats.connectFailures, 1)
	l.connectFailed(p, err)
}

// connectFailed ends p with err, or, when its Retry names another address, closes the
// failed upstream socket and connects there.
func (l *loop) connectFailed(p *pair, err error) {
	if p.retry == nil {
		l.finish(p, err, nil)
		return
	}
	next, ok := p.retry(err)
	if !ok {
		l.finish(p, err, nil)
		return
	}
	unlink(p)
	if fd := p.fd[upstream]; fd >= 0 {
		l.forget(fd)
		sysClose(fd)
		p.fd[upstream] = -1
	}
	l.connect(p, next)
}

// pairEvent handles the events of one side of p.
func (l *loop) pairEvent(p *pair, side int, events uint32) {
	if p.heading {
		l.headEvent(p, events)
		return
	}
	if p.connecting {
		// The client may speak first: its bytes wait in the kernel until the upstream is
		// there, and connected reads them then.
		if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			p.readable[side] = true
		}
		if side == client && events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			// A reset (a half-close is only EPOLLRDHUP): the client is gone, so the connect,
			// which may take up to its timeout, is given up now.
			l.finish(p, nil, sideError("socket", client, clientGone(p.fd[client])))
			return
		}
		if side == upstream && events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.completeConnect(p, events)
		}
		return
	}
	if events&unix.EPOLLERR != 0 {
		if e := socketError(p.fd[side]); e != 0 {
			l.finish(p, nil, sideError("socket", side, e))
			return
		}
	}
	var err error
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 && !p.dir[side].blocked {
		// A plain EPOLLIN edge was reported after the bytes it announced had arrived, so a short
		// read drained the socket; with a FIN or hang-up pending, read on until the EOF.
		err = l.pump(p, side, events&(unix.EPOLLRDHUP|unix.EPOLLHUP) == 0)
	}
	// EPOLLOUT is in every report of a writable socket; it is news only to a blocked direction.
	if err == nil && events&(unix.EPOLLOUT|unix.EPOLLHUP) != 0 && p.dir[1-side].blocked {
		err = l.pump(p, 1-side, false)
	}
	l.settle(p, err)
}

// clientGone is the error of a client socket that hung up: its pending error, or a reset.
func clientGone(fd int32) unix.Errno {
	if e := socketError(fd); e != 0 {
		return e
	}
	return unix.ECONNRESET
}

// completeConnect reads the connect's outcome once the upstream socket reported events: a
// failed connect sets the socket's error, which epoll reports as EPOLLERR, so only then is the
// error read (SO_ERROR); EPOLLOUT alone is a connect that succeeded.
func (l *loop) completeConnect(p *pair, events uint32) {
	if events&(unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		l.connected(p)
		return
	}
	if e := socketError(p.fd[upstream]); e != 0 {
		l.failConnect(p, os.NewSyscallError("connect", e))
		return
	}
	l.connected(p)
}

// connected starts relaying p: each direction whose source reported bytes while the connect
// was under way is pumped, and the Reply written.
func (l *loop) connected(p *pair) {
	if p.check != nil {
		if err := l.checkUpstream(p); err != nil {
			bump(&l.stats.connectFailures, 1)
			l.finish(p, err, nil)
			return
		}
	}
	p.connecting = false
	unlink(p)
	p.stamp = l.now
	l.idle.pushBack(p)
	if p.connectedHook != nil {
		p.connectedHook(p.addr)
	}
	if len(p.reply) > 0 {
		l.queueReply(p)
	}
	err := l.kick(p, client)
	if err == nil {
		err = l.kick(p, upstream)
	}
	l.settle(p, err)
}

// kick starts direction i of a pair just connected: pumped when its source reported bytes
// while connecting, else only its pending bytes (a Reply) written, which spares a read that
// would find nothing.
func (l *loop) kick(p *pair, i int) error {
	if p.readable[i] {
		return l.pump(p, i, false)
	}
	d := &p.dir[i]
	if d.off < d.end {
		if done, err := l.writeOut(p, i); !done {
			return err
		}
		l.release(d)
	}
	return nil
}

// checkUpstream runs p's Check with the local address of its connected upstream socket.
func (l *loop) checkUpstream(p *pair) error {
	if e := sysLocal(p.fd[upstream], &l.sa); e != 0 {
		return os.NewSyscallError("getsockname", e)
	}
	return p.check(p.addr, addrOf(&l.sa))
}

// settle ends p on an error or once both directions are over.
func (l *loop) settle(p *pair, err error) {
	if err != nil || (p.dir[client].shut && p.dir[upstream].shut) {
		l.finish(p, nil, err)
	}
}

// pump moves the bytes of direction i until its source has none (EAGAIN, or a short read when
// trustShort), its destination is full (EAGAIN: blocked until the destination's EPOLLOUT edge,
// and the source is not read meanwhile, which is the backpressure) or its source ended, which
// shuts the destination for writing once the pending bytes are written.
func (l *loop) pump(p *pair, i int, trustShort bool) error {
	d := &p.dir[i]
	src, dst := p.fd[i], p.fd[1-i]
	d.short = false
	for !d.shut {
		if d.pre > 0 && d.off == 0 && d.end == d.pre && d.end < len(d.buf) && !d.eof {
			// Only the Reply is pending and the upstream spoke first (a banner): both go
			// out in one write.
			read, rerr := l.fill(src, d, i)
			if rerr != nil || !read {
				// Nothing after all, or the upstream failed: the Reply goes alone (before the
				// failure ends the pair, as it went before any read), and no read again.
				if done, err := l.writeOut(p, i); !done && err != nil {
					return err
				}
				l.release(d)
				return rerr
			}
		}
		if done, err := l.writeOut(p, i); !done {
			return err
		}
		d.blocked = false
		if d.eof {
			if !p.dir[1-i].shut {
				sysShutdown(dst) // a failure shows on the next read or write
			}
			// Else both ways are over and the pair closes now: dst's bytes were all read (to
			// its EOF), so the close sends the FIN that a shutdown would have.
			d.shut = true
			l.release(d)
			return nil
		}
		if d.short && trustShort {
			l.release(d)
			return nil
		}
		if d.buf == nil {
			d.buf = l.take()
		}
		if read, err := l.fill(src, d, i); err != nil || !read {
			l.release(d)
			return err
		}
	}
	return nil
}

// fill reads src's bytes into d's buffer behind those pending there (a Reply, or none): false
// when src had none (EAGAIN); an end of stream sets eof.
func (l *loop) fill(src int32, d *direction, i int) (bool, error) {
	if d.off == d.end {
		d.off, d.end = 0, 0
	}
	for {
		n, e := sysRead(src, d.buf[d.end:])
		switch {
		case e == unix.EINTR:
			continue
		case e == unix.EAGAIN:
			return false, nil
		case e != 0:
			return false, sideError("read", i, e)
		case n == 0:
			d.eof = true
		default:
			d.end += n
			d.short = d.end < len(d.buf)
		}
		return true, nil
	}
}

// writeOut writes direction i's pending bytes: true once none is left, false when its
// destination is full (blocked until its EPOLLOUT edge) or failed (the error).
func (l *loop) writeOut(p *pair, i int) (bool, error) {
	d := &p.dir[i]
	dst := p.fd[1-i]
	for d.off < d.end {
		n, e := sysWrite(dst, d.buf[d.off:d.end])
		switch e {
		case 0:
			d.off += n
			if d.pre > 0 {
				skip := min(n, d.pre)
				d.pre -= skip
				n -= skip
			}
			d.total += int64(n)
			l.count(i, n)
			l.touch(p)
		case unix.EAGAIN:
			d.blocked = true
			return false, nil
		case unix.EINTR:
		default:
			return false, sideError("write", 1-i, e)
		}
	}
	return true, nil
}

// count adds n bytes of direction i to the Group's counters.
func (l *loop) count(i, n int) {
	if i == client {
		bump(&l.stats.bytesUp, int64(n))
	} else {
		bump(&l.stats.bytesDown, int64(n))
	}
}

func sideError(op string, side int, e unix.Errno) error {
	return fmt.Errorf("evloop: %s %s: %w", op, sideNames[side], e)
}

// finish closes both sockets of p, returns its buffers and reports it to Done.
func (l *loop) finish(p *pair, connectErr, err error) {
	unlink(p)
	if connectErr != nil && p.refuse != nil {
		if b := p.refuse(connectErr); len(b) > 0 {
			sysWrite(p.fd[client], b) // best effort, as Target.Refuse says
		}
	}
	for _, fd := range p.fd {
		if fd >= 0 {
			l.forget(fd)
			sysClose(fd)
		}
	}
	for i := range p.dir {
		d := &p.dir[i]
		d.off, d.end = 0, 0
		l.release(d)
	}
	l.open--
	l.g.open.Add(-1)
	res := Result{Up: p.dir[client].total, Down: p.dir[upstream].total, ConnectErr: connectErr, Err: err, Duration: l.now - p.start}
	done := p.done
	l.freePair(p)
	if done != nil {
		done(res)
	}
}

// maxFreePairs and maxFreeBuffers bound a loop's free lists: enough for a burst of short
// connections, not a footprint kept after a flood.
const (
	maxFreePairs   = 256
	maxFreeBuffers = 64
)

func (l *loop) newPair() *pair {
	if n := len(l.freePairs); n > 0 {
		p := l.freePairs[n-1]
		l.freePairs = l.freePairs[:n-1]
		return p
	}
	return new(pair)
}

func (l *loop) freePair(p *pair) {
	*p = pair{}
	if len(l.freePairs) < maxFreePairs {
		l.freePairs = append(l.freePairs, p)
	}
}

// take hands a direction a buffer for the bytes it is about to read.
func (l *loop) take() []byte {
	l.buffersOut++
	l.buffersPeak = max(l.buffersPeak, l.buffersOut)
	if l.buffersOut > 2*l.open {
		l.bufferOverruns++ // never: a direction holds at most one
	}
	if n := len(l.freeBufs); n > 0 {
		b := l.freeBufs[n-1]
		l.freeBufs = l.freeBufs[:n-1]
		return b
	}
	return make([]byte, l.bufSize)
}

// queueReply puts p's Reply before the upstream's bytes to the client, as pending bytes of
// that direction that are not counted as relayed.
func (l *loop) queueReply(p *pair) {
	d := &p.dir[upstream]
	if len(p.reply) > l.bufSize {
		l.buffersOut++ // a buffer of its own, which release counts back and does not keep
		d.buf = make([]byte, len(p.reply))
	} else {
		d.buf = l.take()
	}
	d.off, d.end, d.pre = 0, copy(d.buf, p.reply), len(p.reply)
	p.reply = nil
}

// release returns d's buffer once nothing of it is pending, so that an idle pair holds none.
func (l *loop) release(d *direction) {
	if d.buf == nil || d.off < d.end {
		return
	}
	l.buffersOut--
	if len(l.freeBufs) < maxFreeBuffers && len(d.buf) == l.bufSize {
		l.freeBufs = append(l.freeBufs, d.buf)
	}
	d.buf, d.off, d.end = nil, 0, 0
}
