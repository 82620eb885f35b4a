package httpfwd

import (
	"io"
	"net"
	"syscall"
)

// sockIO reads and writes a connection's socket with raw system calls where it has one, and
// through the connection otherwise. A read or write on a non-blocking socket never blocks, so
// it need not tell the scheduler it enters a system call: that saves the hand-off bookkeeping
// per call and, under load, keeps the runtime's monitor thread from waking every 20 µs to
// take back processors it believes blocked. Waiting for readiness and deadlines stay the
// netpoller's, through syscall.RawConn.
type sockIO struct {
	nc  net.Conn
	raw syscall.RawConn // nil: nc's own Read and Write

	// A read and a write may run at once on two goroutines (a request body streams while the
	// response is written), so each has its own state.
	rp, wp     []byte
	rn, wn     int
	rerr, werr error

	readFn, writeFn func(fd uintptr) bool
}

// bind points s at nc. Only a connection that is itself a socket (it has SyscallConn and so
// reads nothing of its own, unlike a TLS or prefix connection) is read raw.
func (s *sockIO) bind(nc net.Conn) {
	s.nc, s.raw = nc, nil
	if !canRawIO {
		return
	}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			s.raw = rc
		}
	}
	if s.readFn == nil {
		s.readFn, s.writeFn = s.readFD, s.writeFD // bound once: a method value per call allocates
	}
}

// forget drops the connection, so state kept for reuse does not hold it.
func (s *sockIO) forget() { s.nc, s.raw, s.rp, s.wp = nil, nil, nil, nil }

// Read reads once into p, waiting for the socket to be readable when it is empty.
func (s *sockIO) Read(p []byte) (int, error) {
	if s.raw == nil {
		return s.nc.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
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
func (s *sockIO) Write(p []byte) (int, error) {
	if s.raw == nil {
		return s.nc.Write(p)
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
