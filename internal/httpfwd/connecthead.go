package httpfwd

import "bytes"

// connectPrefix is how a CONNECT request line begins.
const connectPrefix = "CONNECT "

// ConnectHead judges raw, the first bytes a client sent on a new connection, as the engine
// judges the first request it reads there, for a caller that serves CONNECT tunnels outside
// the engine (an event loop peeking at the socket) and hands it every other connection. When
// raw begins with a complete CONNECT head that the engine would hand to OnConnect, it returns
// the head, its RequestID set as the engine sets it (the client's x-request-id, else a new
// one), and its length n: the bytes after it are the tunnel's. more is true when raw is not a
// complete head yet but may become one within MaxHeaderBytes. Otherwise, head is nil and more
// false: the engine must serve the connection, which answers it as it always does (another
// method, a malformed or too large head, a forwarding loop).
//
// The head's slices point into a copy of raw's head of its own, and it has neither RemoteAddr
// nor LocalAddr.
func (s *Server) ConnectHead(raw []byte) (head *RequestHead, n int, more bool) {
	head, n, more = s.ConnectHeadInto(raw, new(RequestHead))
	if head != nil && head.RequestID == nil {
		head.RequestID = newRequestID(new([36]byte))
	}
	return head, n, more
}

// ConnectHeadInto is ConnectHead parsing into r, which a caller that judges head after head
// (an event loop) reuses: the head it returns is r, valid until r's next use, and once r has
// held a head as large the call allocates nothing (the host string is kept while it repeats).
// Its RequestID is only the client's, nil when it sent none: the caller makes one if it
// needs it, and copies it if it keeps it, as it points into r.
func (s *Server) ConnectHeadInto(raw []byte, r *RequestHead) (head *RequestHead, n int, more bool) {
	s.init()
	if len(raw) < len(connectPrefix) {
		// A head that begins with empty lines (readHead skips them) is the engine's too.
		return nil, 0, bytes.HasPrefix([]byte(connectPrefix), raw)
	}
	if !bytes.HasPrefix(raw, []byte(connectPrefix)) {
		return nil, 0, false
	}
	end := headEnd(nil, raw)
	if end < 0 {
		// readHead refuses a head once it read more than MaxHeaderBytes without its end.
		return nil, 0, len(raw) <= s.lim.MaxHeaderBytes
	}
	if end > s.lim.MaxHeaderBytes {
		return nil, 0, false
	}
	r.maxFields = s.lim.MaxHeaders
	// The copy goes where r's last one was: r.raw is r's alone.
	if err := r.parse(append(r.raw[:0:cap(r.raw)], raw[:end]...)); err != nil || r.Method != "CONNECT" || r.looped(s.via) {
		return nil, 0, false
	}
	r.RequestID = nil
	if r.has(flagRequestID) {
		r.RequestID = r.raw[r.requestID.start:r.requestID.end]
	}
	return r, end, false
}

// NewRequestID is a request id as the engine makes one for a request that came without.
func NewRequestID() []byte { return newRequestID(new([36]byte)) }

// LoopHead judges raw, the first bytes a client sent, for a loop that serves HTTP/1.1 requests
// itself: true when raw begins with a whole head within MaxHeaderBytes, which the loop engine
// then parses and serves or hands to the engine. Anything else (a head not complete yet, TLS,
// binary, a head past the bound) is the engine's.
func (s *Server) LoopHead(raw []byte) bool {
	s.init()
	end := headEnd(nil, raw)
	return end >= 0 && end <= s.lim.MaxHeaderBytes
}
