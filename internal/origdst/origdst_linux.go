package origdst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h, which x/sys lacks.
const ip6tSOOriginalDst = 80

// OriginalDst returns the destination c was addressed to before iptables REDIRECT (or DNAT) rewrote it,
// as recorded by conntrack; IPv4 addresses, including ones seen by an IPv6 socket, come back unmapped.
//
// It reads the socket through SyscallConn rather than File, which would dup the descriptor and switch
// it to blocking mode. It returns an error wrapping ErrNotRedirected when conntrack has no entry for c
// or the entry shows no rewrite.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	local, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok || local == nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: connection has no local TCP address")
	}
	localAP := local.AddrPort()
	localAP = netip.AddrPortFrom(localAP.Addr().Unmap(), localAP.Port())
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	var (
		dst    netip.AddrPort
		optErr error
	)
	err = rc.Control(func(fd uintptr) {
		// Conntrack keeps IPv4 flows in its IPv4 table even when a dual-stack IPv6 socket accepted them,
		// so the address family of the connection, not of the socket, picks the option; the kernel
		// answers SOL_IP options on such a socket through its IPv4 code.
		if localAP.Addr().Is4() {
			dst, optErr = originalDst4(int(fd))
		} else {
			dst, optErr = originalDst6(int(fd))
		}
	})
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	if errors.Is(optErr, unix.ENOENT) || errors.Is(optErr, unix.ENOPROTOOPT) {
		// ENOENT: conntrack does not track this flow; ENOPROTOOPT: conntrack is not loaded at all.
		return netip.AddrPort{}, fmt.Errorf("%w: local %s: getsockopt: %v", ErrNotRedirected, localAP, optErr)
	}
	if optErr != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: local %s: getsockopt: %w", localAP, optErr)
	}
	if dst == localAP {
		// Conntrack tracks every flow once NAT is loaded, and for one that was never rewritten it
		// reports the local address itself.
		return netip.AddrPort{}, fmt.Errorf("%w: original destination is the local address %s", ErrNotRedirected, localAP)
	}
	return dst, nil
}

// originalDst4 reads SO_ORIGINAL_DST, a struct sockaddr_in. x/sys has no getsockopt for an arbitrary
// buffer, so it borrows IPv6Mreq, whose 20 bytes hold the 16 of a sockaddr_in, and decodes them here.
func originalDst4(fd int) (netip.AddrPort, error) {
	m, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw := m.Multiaddr[:]
	if family := binary.NativeEndian.Uint16(raw[0:2]); family != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST returned address family %d, want AF_INET", family)
	}
	port := binary.BigEndian.Uint16(raw[2:4])
	addr := netip.AddrFrom4([4]byte(raw[4:8]))
	return netip.AddrPortFrom(addr, port), nil
}

// originalDst6 reads IP6T_SO_ORIGINAL_DST, a struct sockaddr_in6, through IPv6MTUInfo, which starts
// with one.
func originalDst6(fd int) (netip.AddrPort, error) {
	m, err := unix.GetsockoptIPv6MTUInfo(fd, unix.SOL_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if m.Addr.Family != unix.AF_INET6 {
		return netip.AddrPort{}, fmt.Errorf("IP6T_SO_ORIGINAL_DST returned address family %d, want AF_INET6", m.Addr.Family)
	}
	// The port field holds network byte order bytes that the struct reads as a native integer.
	var p [2]byte
	binary.NativeEndian.PutUint16(p[:], m.Addr.Port)
	port := binary.BigEndian.Uint16(p[:])
	return netip.AddrPortFrom(netip.AddrFrom16(m.Addr.Addr).Unmap(), port), nil
}
