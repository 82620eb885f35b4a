//go:build !unix || aix

package httpfwd

// canPeek says whether idle sockets are checked with recv(MSG_PEEK); here the pool uses a read
// with a short deadline instead.
const canPeek = false

func (uc *upConn) peekFD(uintptr) bool {
	uc.peekState = peekUnknown
	return true
}
