//go:build !linux

package relay

import "net"

// move copies src to dst with a pooled buffer; the descriptor-free wait is Linux only.
func (r *relay) move(dst, src net.Conn) (int64, error) {
	return r.copyBlocking(dst, src)
}
