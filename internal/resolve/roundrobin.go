package resolve

import (
	"net/netip"
	"sync/atomic"
)

// RoundRobin spreads the connections of a DNS_ROUND_ROBIN service over the addresses of its
// name; the zero value is ready to use and safe for concurrent use.
type RoundRobin struct {
	// An atomic counter rather than a mutex, since it is bumped on every new connection.
	n atomic.Uint64
}

// Next returns a different address of addrs on each call, in turn, or the zero Addr when
// addrs is empty.
func (rr *RoundRobin) Next(addrs []netip.Addr) netip.Addr {
	if len(addrs) == 0 {
		return netip.Addr{}
	}
	return addrs[(rr.n.Add(1)-1)%uint64(len(addrs))]
}
