package httpfwd

import (
	"io"
	"os"
	"syscall"
)

// canRawIO says whether sockets are read and written with raw system calls.
const canRawIO = true

// readFD reads once from the non-blocking descriptor into s.rp; false asks RawConn.Read to wait.
func (s *sockIO) readFD(fd uintptr) bool {
	for {
		n, e := sysRead(fd, s.rp)
		switch e {
		case 0:
			if n == 0 {
				s.rerr = io.EOF
			}
			s.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		s.rerr = os.NewSyscallError("read", e)
		return true
	}
}

// writeFD writes what is left of s.wp; false asks RawConn.Write to wait for room.
func (s *sockIO) writeFD(fd uintptr) bool {
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
