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
	i := rr.NextIndex(len(addrs))
	if i < 0 {
		return netip.Addr{}
	}
	return addrs[i]
}

// NextIndex returns the next index in [0, n) in turn, taking the same turn as Next, or -1
// when n is not positive; a caller that keeps its own data per address can index it directly
// instead of searching for the address Next returned.
func (rr *RoundRobin) NextIndex(n int) int {
	if n <= 0 {
		return -1
	}
	return int((rr.n.Add(1) - 1) % uint64(n))
}
