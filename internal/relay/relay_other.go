//go:build !linux

package relay

import "net"

// move writes the greeting and copies src to dst with a pooled buffer; the descriptor-free wait
// is Linux only.
func (r *relay) move(dst, src net.Conn, greeting []byte) (int64, error) {
	if err := greet(dst, greeting); err != nil {
		return 0, err
	}
	return r.copyBlocking(dst, src)
}
