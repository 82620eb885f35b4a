package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sockets of a loop: accepting clients, dispatching their events, the buffers, upstream
// connections (pooled or new), and closing (after an error answer, for fail).

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
