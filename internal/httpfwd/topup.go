package httpfwd

// A connection waits for its next request with a small arrival room (idle.go), so a body of a
// few KiB that came in the same packets as its head is mostly still in the socket when the head
// is parsed; one read that cannot block (rawio.Socket.ReadNow) brings it into the client reader,
// and the body then leaves with the head in one write instead of being streamed on a goroutine
// of its own.

// topUpBody brings the request body of need bytes into c.br from what the client already sent,
// without waiting. A body larger than the reader is streamed whatever arrived, so it is left to
// the stream, which saves a read that may find nothing.
func (c *conn) topUpBody(need int64) {
	if need > int64(c.br.Size()) || int64(c.br.Buffered()) >= need || !c.cio.Raw() {
		return
	}
	n := int(need)
	c.pending.now = true
	// The reader hands back (and forgets) the error that ended the top-up: rawio.ErrNothingYet, or a
	// failure the body copy then meets again on the socket.
	c.br.Peek(n)
	c.pending.now = false
}
