package httpfwd

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// holdBody reads the stream's body into memory when its route retries or mirrors, so that
// every try and the mirror send it whole, as the HTTP/1.1 path holds a body: only a body of a
// declared length of at most Limits.MaxReplayBytes, and without trailers, which arrive only
// after the body. Any other body streams once to the first try, counted in ReplayTooLarge.
// It reports false when it answered the stream because the client's body failed.
func (st *h2Stream) holdBody(a *Actions) bool {
	if st.body == nil || a.Retry == nil && a.Mirror == nil {
		return true
	}
	s := st.hc.s
	n := st.r.ContentLength
	if n == 0 {
		return true // the stream ended with its head: nothing to hold
	}
	if n < 0 || n > int64(s.lim.MaxReplayBytes) || len(st.r.Trailer) > 0 {
		s.stats.replayTooLarge.Add(1)
		return true
	}
	buf := make([]byte, n)
	rc := http.NewResponseController(st.w)
	for got := 0; got < len(buf); {
		// Each pause is bounded as a streamed body's is, by StreamIdleTimeout.
		_ = rc.SetReadDeadline(time.Now().Add(s.lim.StreamIdleTimeout))
		m, err := st.body.Read(buf[got:])
		got += m
		if err != nil && (got < len(buf) || err != io.EOF) {
			st.bodyFailed(err)
			return false
		}
	}
	_ = rc.SetReadDeadline(time.Time{})
	st.replay = buf
	return true
}

// bodyFailed answers a stream whose body could not be read whole: 408 after a pause past
// StreamIdleTimeout, as Envoy answers a stream idle timeout, 400 otherwise.
func (st *h2Stream) bodyFailed(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		st.fail(408, "request body timed out", err)
		return
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	st.fail(400, "reading the request body failed", err)
}

// attachBody gives out the stream's body: a fresh reader over the held body on every try, or
// the client's stream itself, which only one try can send.
func (st *h2Stream) attachBody(out *http.Request) {
	if st.body == nil {
		return
	}
	if st.replay != nil {
		replay := st.replay
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(replay)), nil }
		out.Body, _ = out.GetBody()
		out.ContentLength = int64(len(replay))
		return
	}
	st.body.declare(out)
	out.Body = st.body
	out.ContentLength = st.r.ContentLength
	if out.ContentLength == 0 {
		out.ContentLength = -1 // the length is not known before END_STREAM
	}
}

// bodyUnsent reports whether a failed try sent none of the stream's body, so that it can be
// tried again: no body, a held one, or a streamed one not yet read from.
func (st *h2Stream) bodyUnsent() bool {
	return st.body == nil || st.replay != nil || st.body.n.Load() == 0
}
