//go:build unix && !aix

package httpfwd

import (
	"io"
	"syscall"
)

// canTopUp says whether a request body is topped up with a read that cannot block.
const canTopUp = true

// readFD reads once from the (non-blocking) descriptor into t.buf; it never asks RawConn.Read
// to wait.
func (t *topUp) readFD(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), t.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			t.err = errNothingYet
		case err != nil:
			t.err = err
		case n == 0:
			t.err = io.EOF
		default:
			t.n = n
		}
		return true
	}
}
