package netpair

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// Hung is a loopback port whose connects hang: a listener with backlog 0 that never accepts,
// filled until a connect to it hangs, as the kernel drops the SYNs of a full accept queue, so
// a connect neither succeeds nor fails until its timeout. No packet leaves the loopback. It
// returns the address, the listener's (blocking) descriptor and the number of connections
// that fill its queue; all are closed when the test ends.
func Hung(t testing.TB) (addr netip.AddrPort, fd, fillers int) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	for n := range 8 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			return addr, fd, n // this one hung: the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("the backlog-0 listener took 8 connections")
	return addr, fd, 0
}
