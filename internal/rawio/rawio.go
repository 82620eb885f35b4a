// Package rawio reads and writes sockets with raw system calls.
//
// A read or write on a non-blocking socket never blocks, yet the syscall package's calls enter
// the scheduler's system-call state; under load the runtime's monitor thread then keeps waking
// every 20 µs to take back processors it believes blocked, and each call pays the hand-off
// bookkeeping. Socket does the call itself through syscall.RawConn: waiting for readiness and
// deadlines stay the netpoller's, and so do the errors they end with.
package rawio

import (
	"errors"
	"io"
	"net"
	"syscall"
)

// Socket reads and writes a connection's socket raw where it has one, and through the
// connection otherwise. A read and a write may run at once on two goroutines; two reads, or two
// writes, may not. The zero value is unbound.
type Socket struct {
	nc  net.Conn
	raw syscall.RawConn // nil: nc's own Read and Write

	// A read and a write each have their own state: a request body may stream while the
	// response is written.
	rp, wp     []byte
	rn, wn     int
	rerr, werr error

	// A held write (HoldWrite) goes out from within the next Read; nowait makes a read that
	// finds the socket empty end with ErrNothingYet (ReadNow).
	hold, sending, stalled, nowait bool
	held                           []byte

	readFn, writeFn, sendReadFn func(fd uintptr) bool
}

// Bind points s at nc. Only a connection that is itself a socket (it has SyscallConn and so
// reads nothing of its own, unlike a TLS or prefix connection) is read raw.
func (s *Socket) Bind(nc net.Conn) {
	s.nc, s.raw = nc, nil
	if !Enabled {
		return
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.raw = rc
		}
	}
	s.hold, s.held = false, nil
}

// ErrNothingYet ends a ReadNow that found the socket empty.
var ErrNothingYet = errors.New("rawio: nothing has arrived yet")

// ReadNow reads once what the socket holds now, never waiting: ErrNothingYet when it holds
// nothing, or when it is not read raw. The poller's readiness is reset and every later read
// tries the socket first, so no readiness it reported is lost (it is edge-triggered).
func (s *Socket) ReadNow(p []byte) (int, error) {
	if s.raw == nil || len(p) == 0 {
		return 0, ErrNothingYet
	}
	s.nowait = true
	n, err := s.Read(p)
	s.nowait = false
	return n, err
}

// Forget drops the connection, so state kept for reuse does not hold it.
func (s *Socket) Forget() { s.nc, s.raw, s.rp, s.wp, s.hold, s.held = nil, nil, nil, nil, false, nil }

// HoldWrite makes the next Write keep its bytes, uncopied, for the next Read to send, and
// reports whether it will (only a raw socket does). That Read sends them after the poller's
// readiness for the socket was cleared, so it can then wait for the answer at once instead of
// first trying a read that finds nothing: one system call less per exchange. It is for a
// request whose answer is read next: the caller must not write again, nor change the bytes,
// until that Read, and calls Unhold after the Write.
func (s *Socket) HoldWrite() bool {
	s.hold = s.raw != nil
	return s.hold
}

// Unhold ends a HoldWrite that no Write took.
func (s *Socket) Unhold() { s.hold = false }

// Holding reports whether written bytes wait for the next Read.
func (s *Socket) Holding() bool { return s.held != nil }

// RawConn returns the socket's RawConn when it is read and written raw, nil otherwise.
func (s *Socket) RawConn() syscall.RawConn { return s.raw }

// Raw reports whether the socket is read and written raw.
func (s *Socket) Raw() bool { return s.raw != nil }

// Read reads once into p, waiting for the socket to be readable when it is empty.
func (s *Socket) Read(p []byte) (int, error) {
	if s.raw == nil {
		return s.nc.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.held != nil {
		return s.sendThenRead(p)
	}
	if s.readFn == nil {
		s.readFn = s.readFD // bound once, on first use: a method value made per call allocates
	}
	s.rp, s.rn, s.rerr = p, 0, nil
	err := s.raw.Read(s.readFn)
	s.rp = nil
	if err != nil {
		return 0, err
	}
	return s.rn, s.rerr
}

// Write writes all of p, waiting for room in the socket as often as it needs.
func (s *Socket) Write(p []byte) (int, error) {
	if s.raw == nil {
		return s.nc.Write(p)
	}
	if s.hold {
		s.hold, s.held = false, p
		return len(p), nil
	}
	if s.writeFn == nil {
		s.writeFn = s.writeFD
	}
	s.wp, s.wn, s.werr = p, 0, nil
	err := s.raw.Write(s.writeFn)
	s.wp = nil
	if err == nil {
		err = s.werr
	}
	if err == nil && s.wn < len(p) {
		err = io.ErrShortWrite
	}
	return s.wn, err
}

// sendThenRead sends the held bytes and reads the answer into p, in one RawConn.Read: its
// readiness reset comes before the send, so the answer's arrival cannot be missed by a wait
// that skips the first read. A send the socket has no room for finishes as a plain Write, and
// the read is then a plain Read.
func (s *Socket) sendThenRead(p []byte) (int, error) {
	held := s.held
	s.held = nil
	s.rp, s.rn, s.rerr = p, 0, nil
	s.wp, s.wn, s.werr = held, 0, nil
	s.sending, s.stalled = true, false
	if s.sendReadFn == nil {
		s.sendReadFn = s.sendThenReadFD
	}
	err := s.raw.Read(s.sendReadFn)
	s.rp, s.wp = nil, nil
	switch {
	case err == nil && s.werr != nil:
		return 0, s.werr
	case err == nil && s.stalled:
		if _, err := s.Write(held[s.wn:]); err != nil {
			return 0, err
		}
		return s.Read(p)
	case err != nil:
		return 0, err
	}
	return s.rn, s.rerr
}
