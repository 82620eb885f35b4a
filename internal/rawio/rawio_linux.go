package rawio

import (
	"io"
	"os"
	"syscall"
)

// Enabled says whether sockets are read and written with raw system calls.
const Enabled = true

// ReadFD reads once from the non-blocking descriptor fd into p, retrying an interrupted call.
// EAGAIN comes back as it is, for the caller to wait.
func ReadFD(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	for {
		n, e := sysRead(fd, p)
		if e != syscall.EINTR {
			return n, e
		}
	}
}

// readFD is the poller's read func: false asks RawConn.Read to wait for bytes.
func (s *Socket) readFD(fd uintptr) bool {
	n, e := ReadFD(fd, s.rp)
	switch e {
	case 0:
		if n == 0 {
			s.rerr = io.EOF
		}
		s.rn = n
		return true
	case syscall.EAGAIN:
		if s.nowait {
			s.rerr = ErrNothingYet
			return true
		}
		return false
	}
	s.rerr = os.NewSyscallError("read", e)
	return true
}

// writeFD is the poller's write func, writing what is left of s.wp: false asks RawConn.Write
// to wait for room.
func (s *Socket) writeFD(fd uintptr) bool {
	for s.wn < len(s.wp) {
		n, e := sysWrite(fd, s.wp[s.wn:])
		switch e {
		case 0:
			s.wn += n
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.werr = os.NewSyscallError("write", e)
		return true
	}
	return true
}

// sendThenReadFD is sendThenRead's poller func: first the send, then false to wait for the
// answer (or true to finish the send outside, the socket having no room), then the read.
func (s *Socket) sendThenReadFD(fd uintptr) bool {
	if !s.sending {
		return s.readFD(fd)
	}
	s.sending = false
	if !s.writeFD(fd) {
		s.stalled = true
		return true
	}
	return s.werr != nil
}
