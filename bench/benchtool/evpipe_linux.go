package main

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/meshentry/meshentry/internal/evloop"
)

// serveEvPipe is a TCP relay on raw epoll, outside Go's netpoller: one loop per GOMAXPROCS, each
// on its own locked thread with its own SO_REUSEPORT listener, accepting, connecting and
// relaying with non-blocking syscalls and edge-triggered events, as HAProxy does. It shows what
// a relay written in Go can reach once the netpoller's parks and wakeups are out of the path.
// A floor for measurement only: it has no timeouts and no bounds, and an event left in a batch
// for a descriptor closed earlier in it may reach the pair that reused its number (at worst an
// early pump, which finds EAGAIN).
func serveEvPipe(addr, upstream string) error {
	la, ua, err := parseAddrs(addr, upstream)
	if err != nil {
		return err
	}
	// SO_REUSEPORT would share the port with any other such listener (HAProxy's): make sure
	// it is free first.
	probe, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	probe.Close()
	n := runtime.GOMAXPROCS(0)
	errs := make(chan error, n)
	for range n {
		lfd, err := reusePortListener(la)
		if err != nil {
			return err
		}
		go func() { errs <- runEvLoop(lfd, sockaddr(ua)) }()
	}
	return <-errs
}

// parseAddrs parses the listen address and the upstream of a relay.
func parseAddrs(addr, upstream string) (listen, up netip.AddrPort, err error) {
	if listen, err = netip.ParseAddrPort(addr); err != nil {
		return
	}
	up, err = netip.ParseAddrPort(upstream)
	return
}

func sockaddr(a netip.AddrPort) *syscall.SockaddrInet4 {
	return &syscall.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
}

func reusePortListener(a netip.AddrPort) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	const soReusePort = 15
	for _, opt := range []int{syscall.SO_REUSEADDR, soReusePort} {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, opt, 1); err != nil {
			return -1, err
		}
	}
	if err := syscall.Bind(fd, sockaddr(a)); err != nil {
		return -1, fmt.Errorf("bind %s: %w", a, err)
	}
	return fd, syscall.Listen(fd, 4096)
}

// evPair is one relayed connection: the client's socket and the upstream's, and the bytes read
// from one side not yet written to the other.
type evPair struct {
	fd        [2]int // 0 client, 1 upstream
	connected bool
	buf       [2][]byte // buf[i] holds what was read from fd[i]
	pending   [2][]byte // the unwritten tail of buf[i]
	eof, shut [2]bool
}

type evLoop struct {
	ep      int
	pairs   map[int]*evPair
	bufs    [][]byte
	target  syscall.Sockaddr
	scratch []syscall.EpollEvent
}

func runEvLoop(lfd int, target syscall.Sockaddr) error {
	runtime.LockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	l := &evLoop{ep: ep, pairs: map[int]*evPair{}, target: target, scratch: make([]syscall.EpollEvent, 256)}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return err
	}
	for {
		n, err := l.wait()
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range l.scratch[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				l.accept(lfd)
				continue
			}
			if p := l.pairs[fd]; p != nil {
				l.event(p, fd, ev.Events)
			}
		}
	}
}

// wait returns the ready events. It polls first without the scheduler's knowledge, which costs
// a plain syscall; only when nothing is ready does it block as a syscall the runtime sees, so
// that the thread's P is handed off (and sysmon woken) only when the loop has nothing to do.
func (l *evLoop) wait() (int, error) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.scratch[0])), uintptr(len(l.scratch)), 0, 0, 0)
	if e == 0 && r > 0 {
		return int(r), nil
	}
	return syscall.EpollWait(l.ep, l.scratch, -1)
}

func (l *evLoop) accept(lfd int) {
	for {
		cfd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or a failure the next event retries
		}
		ufd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			syscall.Close(cfd)
			continue
		}
		if err := syscall.Connect(ufd, l.target); err != nil && err != syscall.EINPROGRESS {
			syscall.Close(cfd)
			syscall.Close(ufd)
			continue
		}
		p := &evPair{fd: [2]int{cfd, ufd}}
		l.pairs[cfd], l.pairs[ufd] = p, p
		for _, fd := range p.fd {
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | (1 << 31), Fd: int32(fd)}
			if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
				l.close(p)
				break
			}
		}
	}
}

func (l *evLoop) event(p *evPair, fd int, events uint32) {
	if !p.connected {
		if fd != p.fd[1] || events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return // the client spoke first: read once the upstream is there
		}
		if e, err := syscall.GetsockoptInt(p.fd[1], syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || e != 0 {
			l.close(p)
			return
		}
		p.connected = true
	}
	for i := range 2 {
		if !l.pump(p, i) {
			l.close(p)
			return
		}
	}
	if p.shut[0] && p.shut[1] {
		l.close(p)
	}
}

// pump moves what fd[i] has to fd[1-i] until one of them would block; false on an error.
func (l *evLoop) pump(p *evPair, i int) bool {
	src, dst := p.fd[i], p.fd[1-i]
	for !p.shut[i] {
		for len(p.pending[i]) > 0 {
			n, err := syscall.Write(dst, p.pending[i])
			if err == syscall.EAGAIN {
				return true
			}
			if err != nil {
				return false
			}
			p.pending[i] = p.pending[i][n:]
		}
		if p.eof[i] {
			syscall.Shutdown(dst, syscall.SHUT_WR)
			p.shut[i] = true
			l.release(p, i)
			return true
		}
		if p.buf[i] == nil {
			p.buf[i] = l.take()
		}
		n, err := syscall.Read(src, p.buf[i])
		switch {
		case err == syscall.EAGAIN:
			l.release(p, i)
			return true
		case err != nil:
			return false
		case n == 0:
			p.eof[i] = true
		default:
			p.pending[i] = p.buf[i][:n]
		}
	}
	return true
}

func (l *evLoop) take() []byte {
	if n := len(l.bufs); n > 0 {
		b := l.bufs[n-1]
		l.bufs = l.bufs[:n-1]
		return b
	}
	return make([]byte, 16<<10)
}

// release returns direction i's buffer to the loop while nothing of it is pending.
func (l *evLoop) release(p *evPair, i int) {
	if p.buf[i] != nil && len(p.pending[i]) == 0 {
		l.bufs = append(l.bufs, p.buf[i])
		p.buf[i] = nil
	}
}

func (l *evLoop) close(p *evPair) {
	for i, fd := range p.fd {
		delete(l.pairs, fd)
		syscall.Close(fd)
		p.pending[i] = nil
		l.release(p, i)
	}
}

// serveEvHand accepts and dials on Go's net, as a proxy that must read a head and pick an
// endpoint does, then hands both sockets to an epoll loop for the relay: what the loop saves
// when only the byte moving leaves the netpoller.
func serveEvHand(addr, upstream string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	n := runtime.GOMAXPROCS(0)
	loops := make([]chan [2]int, n)
	errs := make(chan error, n+1)
	for i := range loops {
		loops[i] = make(chan [2]int, 1024)
		go func() { errs <- runHandLoop(loops[i]) }()
	}
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				errs <- err
				return
			}
			go func() {
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					c.Close()
					return
				}
				cfd, err1 := detach(c)
				ufd, err2 := detach(u)
				if err1 != nil || err2 != nil {
					return
				}
				loops[i%n] <- [2]int{cfd, ufd}
			}()
		}
	}()
	return <-errs
}

// detach takes the socket out of Go's netpoller: a duplicate descriptor, the original closed.
func detach(c net.Conn) (int, error) {
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	rc.Control(func(s uintptr) { fd, err = syscall.Dup(int(s)) })
	c.Close()
	return fd, err
}

func runHandLoop(in chan [2]int) error {
	runtime.LockOSThread()
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	// Polling the channel between waits of 1 ms costs less than an eventfd write per hand-off
	// would, so this flatters the hand-off a little.
	l := &evLoop{ep: ep, pairs: map[int]*evPair{}, scratch: make([]syscall.EpollEvent, 256)}
	for {
		for more := true; more; {
			select {
			case fds := <-in:
				l.add(fds)
			default:
				more = false
			}
		}
		n, err := syscall.EpollWait(ep, l.scratch, 1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range l.scratch[:n] {
			if p := l.pairs[int(ev.Fd)]; p != nil {
				l.event(p, int(ev.Fd), ev.Events)
			}
		}
	}
}

func (l *evLoop) add(fds [2]int) {
	p := &evPair{fd: fds, connected: true}
	l.pairs[fds[0]], l.pairs[fds[1]] = p, p
	for _, fd := range fds {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | (1 << 31), Fd: int32(fd)}
		if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			l.close(p)
			return
		}
	}
	l.event(p, fds[0], 0)
}

// serveEvLoop relays through internal/evloop, the loops meshentry's own relay is built on,
// to the one upstream: the package's cost beside evpipe's bare prototype.
func serveEvLoop(addr, upstream string) error {
	la, ua, err := parseAddrs(addr, upstream)
	if err != nil {
		return err
	}
	g, err := evloop.New(evloop.Options{})
	if err != nil {
		return err
	}
	if _, err := g.Listen(la, func(evloop.Accepted) (evloop.Target, bool) { return evloop.Target{Addr: ua}, true }); err != nil {
		return err
	}
	select {}
}
