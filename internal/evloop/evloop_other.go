//go:build !linux

package evloop

import (
	"context"
	"net/netip"
)

// Group needs Linux epoll; elsewhere New fails and the caller keeps its net-based relay.
type Group struct{}

// New returns ErrUnsupported off Linux.
func New(Options) (*Group, error) { return nil, ErrUnsupported }

// Listen returns ErrUnsupported off Linux.
func (*Group) Listen(netip.AddrPort, RouteFunc) (netip.AddrPort, error) {
	return netip.AddrPort{}, ErrUnsupported
}

// ListenHead returns ErrUnsupported off Linux.
func (*Group) ListenHead(netip.AddrPort, HeadFunc) (netip.AddrPort, error) {
	return netip.AddrPort{}, ErrUnsupported
}

// Shutdown has nothing to stop off Linux.
func (*Group) Shutdown(context.Context) error { return nil }

// Close has nothing to stop off Linux.
func (*Group) Close() error { return nil }

// Stats are all zero off Linux.
func (*Group) Stats() Stats { return Stats{} }

// Conn is a socket a Handler serves; off Linux there are none.
type Conn struct{ Remote, Local netip.AddrPort }

// Loops is 0 off Linux.
func (*Group) Loops() int { return 0 }
