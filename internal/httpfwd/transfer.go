package httpfwd

// This file holds the framing decisions of RFC 9112 §6 as pure functions of parsed heads (as
// net/http's transfer.go does): how a body is delimited, and whether a connection may carry
// another message. The code that moves bytes only acts on them.

// requestCoding checks a request's Transfer-Encoding against the rest of its framing. Only a
// lone chunked is taken, as net/http and Envoy do: anything else a lenient upstream could
// frame differently (RFC 9112 §6.1, §6.3). The engine then sends a Transfer-Encoding of its own.
func requestCoding(r *RequestHead) error {
	if !r.has(flagTE) {
		return nil
	}
	switch te := r.raw[r.te.start:r.te.end]; {
	case r.length >= 0:
		return badHead("both Content-Length and Transfer-Encoding")
	case r.ProtoMinor == 0:
		return badHead("Transfer-Encoding in an HTTP/1.0 request")
	case !r.has(flagChunked):
		return badHead("chunked is not the final transfer coding")
	case r.tes > 1:
		return badHead("multiple Transfer-Encoding fields")
	case equalFold(te, "chunked"):
	case bareCodings(te):
		return errCoding
	default:
		return badHead("Transfer-Encoding other than chunked")
	}
	return nil
}

// bodiless reports a response that never has a body, whatever its fields say (RFC 9112 §6.3).
func bodiless(method string, status int) bool {
	return method == "HEAD" || status < 200 || status == 204 || status == 304
}

// respFraming says how a response body is delimited and how it is relayed to the client.
type respFraming struct {
	noBody  bool // the response has no body, whatever its fields say
	chunked bool // the body is chunked
	toEOF   bool // the body ends when the upstream closes
	dechunk bool // the client speaks HTTP/1.0: it gets the chunked body's bare payload
}

// responseFraming applies RFC 9112 §6.3 to a response to a request of the given method from
// a client speaking HTTP/1.clientMinor. A Transfer-Encoding that does not end in chunked
// delimits the body by the close, as does the lack of any length.
func responseFraming(method string, clientMinor int, resp *responseHead) respFraming {
	var f respFraming
	f.noBody = bodiless(method, resp.status)
	f.chunked = !f.noBody && resp.has(flagChunked)
	f.toEOF = !f.noBody && !f.chunked && (resp.has(flagTE) || resp.length < 0)
	f.dechunk = f.chunked && clientMinor == 0
	return f
}

// keepClient reports whether the client connection may carry another request after this
// response: the client wants it, its request body was read whole, and the response is
// delimited without closing.
func keepClient(req *RequestHead, f respFraming, bodyDone, shutting bool) bool {
	return req.KeepAlive() && bodyDone && !f.toEOF && !f.dechunk && !shutting
}

// upstreamKeepAlive reports whether the upstream will keep the connection open after resp.
func upstreamKeepAlive(resp *responseHead) bool {
	if resp.has(flagClose) {
		return false
	}
	return resp.protoMinor > 0 || resp.has(flagKeepAlive)
}

// upstreamReusable reports whether an upstream connection may go back to the pool once its
// response was relayed: the exchange completed both ways, the response was not delimited by
// the close, the upstream keeps the connection, and it sent nothing beyond the response. An
// HTTP/1.0 response with a Transfer-Encoding is read to the close (RFC 9112 §6.1).
func upstreamReusable(resp *responseHead, f respFraming, relayed, bodyDone bool, leftover int) bool {
	return relayed && bodyDone && !f.toEOF && upstreamKeepAlive(resp) &&
		!(resp.protoMinor == 0 && resp.has(flagTE)) && leftover == 0
}
