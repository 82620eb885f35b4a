package evloop

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The socket calls of the hot path. Every socket here is non-blocking and none lingers, so read,
// write, accept4, connect, shutdown, close and the socket options never block: they go through
// RawSyscall, without entering the scheduler's system-call state, as the loop's thread has
// nothing else to run meanwhile. (A call in that state long enough has sysmon retake the P,
// which keeps sysmon waking every 20 µs: a loopback write or shutdown runs the peer's receive
// path inline and often lasts that long.) The socket
// addresses are written into and parsed out of a loop's scratch sockaddr, so that no call
// allocates.

func sysRead(fd int32, p []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func sysWrite(fd int32, p []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

// sysPeek reads what fd holds without taking it (recvfrom with MSG_PEEK).
func sysPeek(fd int32, p []byte) (int, unix.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_PEEK, 0, 0)
	return int(n), e
}

// sysAccept accepts one connection of the listener lfd, non-blocking, its peer into sa.
func sysAccept(lfd int32, sa *unix.RawSockaddrAny) (int32, unix.Errno) {
	size := uint32(unix.SizeofSockaddrAny)
	fd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(sa)),
		uintptr(unsafe.Pointer(&size)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	return int32(fd), e
}

// sysConnect starts connecting fd to the address held in sa (of size n).
func sysConnect(fd int32, sa *unix.RawSockaddrAny, n uint32) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(sa)), uintptr(n))
	return e
}

// sysLocal is getsockname(2) into sa.
func sysLocal(fd int32, sa *unix.RawSockaddrAny) unix.Errno {
	size := uint32(unix.SizeofSockaddrAny)
	_, _, e := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(sa)), uintptr(unsafe.Pointer(&size)))
	return e
}

// newSocket opens a non-blocking TCP socket of a's family with TCP_NODELAY set.
func newSocket(a netip.Addr) (int32, error) {
	family := unix.AF_INET
	if !a.Is4() {
		family = unix.AF_INET6
	}
	fd, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, e
	}
	if e := setNoDelay(int32(fd)); e != 0 {
		sysClose(int32(fd))
		return -1, e
	}
	return int32(fd), nil
}

// setNoDelay turns Nagle off: a relay forwards what it got at once, as net does by default.
func setNoDelay(fd int32) unix.Errno {
	on := int32(1)
	_, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY,
		uintptr(unsafe.Pointer(&on)), 4, 0)
	return e
}

// socketError reads and clears the pending error of fd (SO_ERROR).
func socketError(fd int32) unix.Errno {
	var v int32
	size := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR,
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		return e
	}
	return unix.Errno(v)
}

// sysShutdown shuts fd for writing: the FIN that passes a half-close on.
func sysShutdown(fd int32) unix.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0)
	return e
}

// sysClose closes fd; its error is of no use to a relay, which is done with the socket.
func sysClose(fd int32) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// putSockaddr writes a into sa and returns its size; a must be unmapped (an IPv4 address as
// such), so that its family is the socket's.
func putSockaddr(sa *unix.RawSockaddrAny, a netip.AddrPort) uint32 {
	port := a.Port()
	if a.Addr().Is4() {
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*s = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Addr().As4()}
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		return unix.SizeofSockaddrInet4
	}
	s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
	*s = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.Addr().As16()}
	if z := a.Addr().Zone(); z != "" {
		s.Scope_id = zoneIndex(z)
	}
	p := (*[2]byte)(unsafe.Pointer(&s.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	return unix.SizeofSockaddrInet6
}

// zoneIndex is the interface index of an IPv6 zone, 0 when unknown (the kernel then refuses a
// link-local address).
func zoneIndex(zone string) uint32 {
	var n uint32
	for _, c := range zone {
		if c < '0' || c > '9' {
			return 0 // a name: link-local upstreams are not worth a netlink lookup here
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}

// addrOf parses sa; an IPv4-mapped IPv6 peer of a dual-stack listener comes back as IPv4, as
// package net reports it.
func addrOf(sa *unix.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case unix.AF_INET:
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(s.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

// listenBacklog is the listen(2) backlog; the kernel caps it at net.core.somaxconn.
const listenBacklog = 4096

// openListener binds a non-blocking SO_REUSEPORT listener to a, so that every loop of a Group
// has its own socket on the same port and the kernel spreads the connections among them. It
// returns the bound address (the port the kernel picked when a's is 0). deferSecs, when
// positive, sets TCP_DEFER_ACCEPT: accept waits (that long at most) for the client's first bytes.
func openListener(a netip.AddrPort, deferSecs int) (int32, netip.AddrPort, error) {
	fd, err := unix.Socket(familyOf(a.Addr()), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, netip.AddrPort{}, fmt.Errorf("evloop: listen %s: %w", a, err)
	}
	fail := func(op string, err error) (int32, netip.AddrPort, error) {
		unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("evloop: %s %s: %w", op, a, err)
	}
	for _, opt := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			return fail("setsockopt", err)
		}
	}
	if deferSecs > 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, deferSecs); err != nil {
			return fail("setsockopt", err)
		}
	}
	var sa unix.RawSockaddrAny
	n := putSockaddr(&sa, a)
	if _, _, e := unix.Syscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(n)); e != 0 {
		return fail("bind", e)
	}
	if err := unix.Listen(fd, listenBacklog); err != nil {
		return fail("listen", err)
	}
	if e := sysLocal(int32(fd), &sa); e != 0 {
		return fail("getsockname", e)
	}
	return int32(fd), addrOf(&sa), nil
}

func familyOf(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}
