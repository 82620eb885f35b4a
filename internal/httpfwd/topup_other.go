//go:build !unix || aix

package httpfwd

// canTopUp says whether a request body is topped up with a read that cannot block; here a body
// not at hand is always streamed.
const canTopUp = false

func (t *topUp) readFD(uintptr) bool {
	t.err = errNothingYet
	return true
}
