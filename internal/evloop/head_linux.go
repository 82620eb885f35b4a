package evloop

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// The head phase of a ListenHead connection. The client's first bytes are peeked, never read,
// so that a connection handed off keeps all of them in its socket and a Go server reads it as
// if it had accepted it itself. The accept was deferred until the client spoke
// (TCP_DEFER_ACCEPT), so the first peek comes straight after accept4, before any epoll_ctl:
// a connection decided there (most, a handoff above all) costs the loop no registration. Only
// a More registers the client, edge-triggered as for a pair and once for its life, and puts it
// on the heads list, whose order is that of the accepts and so of the head deadlines. Each
// edge peeks the whole head again (at most MaxHeadBytes): a head is small, and a peek that
// starts at the front needs no buffer kept per connection.

// errConsume ends a pair whose Target.Consume asked for more than the head peeked.
var errConsume = errors.New("evloop: Target.Consume beyond the peeked head")

// admitHead starts the head phase of an accepted connection, counted in Open already.
func (l *loop) admitHead(head HeadFunc, fd int32, acc Accepted) {
	p := l.newPair()
	p.fd = [2]int32{fd, -1}
	p.start = l.now
	p.heading, p.headFn, p.acc = true, head, acc
	l.open++
	l.peekHead(p, false)
}

// headEvent handles an event of a registered head-phase connection: a hang-up or the client's
// end of stream makes the head final.
func (l *loop) headEvent(p *pair, events uint32) {
	l.peekHead(p, events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0)
}

// peekHead peeks at p's head and carries out what its HeadFunc says; final ends the wait.
func (l *loop) peekHead(p *pair, final bool) {
	n, e := l.peek(p.fd[client])
	switch {
	case e == unix.EAGAIN:
		n = 0 // nothing there yet: an accept deferred past its timeout, or an edge of nothing
	case e != 0:
		bump(&l.stats.headErrors, 1)
		l.closeHead(p)
		return
	case n == 0:
		final = true // the client ended its side without a byte
	case n >= l.maxHeadBytes && !final:
		bump(&l.stats.headFull, 1)
		final = true
	}
	if !final && (n == 0 || p.registered && n == p.headLen) {
		// Nothing new to decide on: the edge of a registration, or of nothing.
		l.waitHead(p)
		return
	}
	p.headLen = n
	v := p.headFn(p.acc, l.headBuf[:n], final)
	if v.More && !final {
		l.waitHead(p)
		return
	}
	l.decide(p, v, n)
}

// peek is one MSG_PEEK of fd's bytes into the loop's head buffer.
func (l *loop) peek(fd int32) (int, unix.Errno) {
	if l.headBuf == nil {
		l.headBuf = make([]byte, l.maxHeadBytes)
	}
	for {
		n, e := sysPeek(fd, l.headBuf)
		if e != unix.EINTR {
			return n, e
		}
	}
}

// waitHead waits for p's next edge, registering it at its first wait.
func (l *loop) waitHead(p *pair) {
	if p.registered {
		return
	}
	if err := l.register(p.fd[client], slot{pair: p, side: client}); err != nil {
		bump(&l.stats.headErrors, 1)
		l.closeHead(p)
		return
	}
	p.registered = true
	bump(&l.stats.headWaits, 1)
	l.heads.pushBack(p)
}

// decide carries out the verdict on p, whose head peeked n bytes: a handoff, a relay, or a
// close with the Reject written first.
func (l *loop) decide(p *pair, v Verdict, n int) {
	t := v.Target
	switch {
	case t.Serve != nil:
		l.serveHead(p, t.Serve)
	case t.Handoff != nil:
		fd := p.fd[client]
		unlink(p)
		if p.registered {
			// The registration belongs to the open file description, which the handoff's
			// net.FileConn duplicates: left there, this loop would go on seeing its events.
			unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, int(fd), nil)
			l.forget(fd)
		}
		l.open--
		l.g.open.Add(-1)
		l.freePair(p)
		l.handoff(fd, t.Handoff)
	case t.Addr.IsValid():
		unlink(p)
		p.heading, p.headFn = false, nil
		if t.Consume < 0 || t.Consume > n || !l.consume(p.fd[client], t.Consume) {
			bump(&l.stats.headErrors, 1)
			p.done = t.Done
			l.finish(p, nil, fmt.Errorf("%w: %d of %d bytes", errConsume, t.Consume, n))
			return
		}
		// Bytes the peek saw beyond the head had their edge already; those sent since bring
		// one (and a client registered only now reports what it holds).
		p.readable[client] = p.registered && n > t.Consume
		l.beginPair(p, t)
	default:
		bump(&l.stats.rejected, 1)
		if len(v.Reject) > 0 {
			sysWrite(p.fd[client], v.Reject) // best effort, as Verdict.Reject says
		}

		l.closeHead(p)
	}
}

// consume reads and drops the first k bytes of fd, which a peek saw there.
func (l *loop) consume(fd int32, k int) bool {
	for k > 0 {
		n, e := sysRead(fd, l.headBuf[:k])
		switch {
		case e == unix.EINTR:
		case e != 0 || n == 0:
			return false
		default:
			k -= n
		}
	}
	return true
}

// closeHead closes a head-phase connection and takes it out of the accounting.
func (l *loop) closeHead(p *pair) {
	unlink(p)
	fd := p.fd[client]
	if p.registered {
		l.forget(fd)
	}
	// Counted out before the close, so that a client that sees the close sees the count.
	l.open--
	l.g.open.Add(-1)
	sysClose(fd) // the last descriptor of the file: epoll drops it too
	l.freePair(p)
}

// sweepHeads ends the head phases whose timeout passed, their HeadFunc called as final.
func (l *loop) sweepHeads() {
	for p := l.heads.first(); p != nil && p.start+l.headTimeout <= l.now; p = l.heads.first() {
		bump(&l.stats.headTimeouts, 1)
		l.peekHead(p, true) // every final verdict takes p off the list
	}
}
