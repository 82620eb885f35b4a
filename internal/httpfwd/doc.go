// Package httpfwd is a lean HTTP/1.1 forwarding engine: it serves accepted client connections,
// asks a Router where each request goes, and relays requests and responses over pooled
// keep-alive upstream connections (or h2c).
//
// It parses heads itself from pooled buffers, without net/http's server, so forwarding a
// request allocates nothing: the head is rewritten only where the spec requires (absolute-form
// target to origin-form, hop-by-hop fields dropped, fields forbidden in trailers dropped, one
// x-request-id, and Via naming this proxy, by which forwarding loops are answered 508) and
// bodies are streamed with their framing checked. Framing is refused rather than guessed when it could be read two
// ways (RFC 9112 §6.3, §11.2), and what the engine forwards is framed canonically: a request
// may only be chunked by a lone "chunked", and goes upstream with one Transfer-Encoding:
// chunked and its chunk extensions dropped; a response's codings are sent as one field of bare
// names and its chunk extensions only when well-formed. So a message cannot be smuggled past
// the engine to a peer that reads it differently.
//
// CONNECT is left to the caller through Server.OnConnect.
package httpfwd
