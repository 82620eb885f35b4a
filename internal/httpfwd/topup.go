package httpfwd

import (
	"errors"
	"net"
	"syscall"
)

// topUp reads what the client has already sent of a request body, without waiting for more.
// A connection waits for its next request with a small arrival room (idle.go), so a body of a
// few KiB that came in the same packets as its head is mostly still in the socket when the head
// is parsed; one read that cannot block brings it into the client reader, and the body then
// leaves with the head in one write instead of being streamed on a goroutine of its own.
//
// The read goes through syscall.RawConn, whose Read resets the poller's readiness and then
// always tries the descriptor before it would wait; the function here never asks it to wait,
// and every later read also tries the descriptor first, so no readiness the poller reported is
// lost (its notifications are edge-triggered).
type topUp struct {
	nc  net.Conn        // the connection raw belongs to
	raw syscall.RawConn // nil when nc has no socket of its own
	fn  func(uintptr) bool
	buf []byte // where readFD reads to, for the length of one call
	n   int
	err error
}

// errNothingYet ends a top-up read that found the socket empty; the reader keeps no error.
var errNothingYet = errors.New("nothing more has arrived yet")

// bind points t at nc, asking for its descriptor once per connection; it reports whether nc has
// one to read without waiting.
func (t *topUp) bind(nc net.Conn) bool {
	if !canTopUp {
		return false
	}
	if t.nc != nc {
		t.nc, t.raw = nc, nil
		if sc, ok := nc.(syscall.Conn); ok {
			if rc, err := sc.SyscallConn(); err == nil {
				t.raw = rc
			}
		}
	}
	if t.fn == nil {
		t.fn = t.readFD // bound once: a method value made per read would allocate
	}
	return t.raw != nil
}

// forget drops the connection, so a conn kept for reuse does not hold it.
func (t *topUp) forget() { t.nc, t.raw, t.buf = nil, nil, nil }

// read reads into p what the socket holds now; errNothingYet when it holds nothing.
func (t *topUp) read(p []byte) (int, error) {
	t.buf, t.n, t.err = p, 0, nil
	if err := t.raw.Read(t.fn); err != nil {
		t.buf = nil
		return 0, err
	}
	t.buf = nil
	return t.n, t.err
}

// topUpBody brings the request body of need bytes into c.br from what the client already sent,
// without waiting. A body larger than the reader is streamed whatever arrived, so it is left to
// the stream, which saves a read that may find nothing.
func (c *conn) topUpBody(need int64) {
	if need > int64(c.br.Size()) || int64(c.br.Buffered()) >= need || !c.top.bind(c.nc) {
		return
	}
	n := int(need)
	c.pending.probe = &c.top
	// The reader hands back (and forgets) the error that ended the top-up: errNothingYet, or a
	// failure the body copy then meets again on the socket.
	c.br.Peek(n)
	c.pending.probe = nil
}
