package httpfwd

import (
	"errors"
	"io"
	"net/http"
	"sync/atomic"
)

// h2ReqBody is a stream's request body as a transport reads it. It counts what was read, so
// a connect failure can be retried only when none was, and ignores Close: a transport closes
// the body of a request that failed, which must stay readable for the next attempt. The
// HTTP/2 server closes the real body when the handler returns.
type h2ReqBody struct {
	r    io.ReadCloser
	idle *idleWatch
	n    atomic.Int64
	err  atomic.Pointer[error] // how reading from the client failed
	// from holds the client's trailers once the body ended (the http.Request's Trailer); to is
	// the Trailer of the request the transport sends, filled from it at the end of the body.
	from, to http.Header
	// maxFields caps the client's trailer fields (Limits.MaxHeaders); tooMany says it was hit.
	maxFields int
	tooMany   atomic.Bool
}

// declare makes out announce the trailers the client announced, except those a trailer must
// not carry (see forbiddenInTrailer), and sets the body to fill them in for out's transport.
func (b *h2ReqBody) declare(out *http.Request) {
	if b.from == nil || len(b.from) > b.maxFields {
		// More trailers announced than may be sent: none are announced upstream, and the
		// body fails at its end (Read).
		return
	}
	out.Trailer = make(http.Header, len(b.from))
	for k := range b.from {
		if !forbiddenInTrailer(k) {
			out.Trailer[k] = nil
		}
	}
	b.to = out.Trailer
}

func (b *h2ReqBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.idle.touch()
	b.n.Add(int64(n))
	if err == io.EOF && overFieldCap(b.from, b.maxFields) {
		// The body never ends for the upstream: it must not take the message as complete
		// without the trailers, nor get more fields than any other section may carry.
		b.tooMany.Store(true)
		err = errTooManyTrailers
	}
	if err == io.EOF && b.to != nil {
		// The client's trailers are complete once its body ended, and a transport reads
		// the request's Trailer only after the body returned io.EOF. The same filter as
		// on the HTTP/1.1 path drops fields that would change the request after the fact.
		for k, vs := range b.from {
			if !forbiddenInTrailer(k) && validName(k) {
				b.to[k] = vs
			}
		}
	}
	if err != nil && err != io.EOF {
		b.err.CompareAndSwap(nil, &err)
	}
	return n, err
}

// Close does nothing; see h2ReqBody.
func (b *h2ReqBody) Close() error { return nil }

// errStreamIdle ends a stream that paused for longer than Limits.StreamIdleTimeout.
var errStreamIdle = errors.New("stream idle for too long")
