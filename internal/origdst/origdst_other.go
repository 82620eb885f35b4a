//go:build !linux

package origdst

import (
	"errors"
	"net"
	"net/netip"
)

// OriginalDst fails outside Linux, where there is no SO_ORIGINAL_DST.
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("origdst: SO_ORIGINAL_DST needs Linux")
}
