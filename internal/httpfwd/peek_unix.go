//go:build unix && !aix

package httpfwd

import "syscall"

// canPeek says whether idle sockets are checked with recv(MSG_PEEK).
const canPeek = true

// peekFD asks the socket, without blocking and without consuming anything, whether a byte or
// EOF is waiting; RawConn.Read calls it with the descriptor.
func (uc *upConn) peekFD(fd uintptr) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), uc.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			uc.peekState = peekQuiet
		case err == syscall.ENOTSOCK:
			uc.peekState = peekUnknown
		default:
			// A byte (n > 0), EOF (n == 0), or a reset and the like.
			uc.peekState = peekBusy
		}
		return true
	}
}
