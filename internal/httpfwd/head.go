package httpfwd

import (
	"bufio"
	"bytes"
	"iter"
)

// parseError is a head the engine refuses; status is what the client is told.
type parseError struct {
	status int
	msg    string
}

func (e *parseError) Error() string { return e.msg }

func badHead(msg string) error { return &parseError{status: 400, msg: msg} }

var (
	errHeadTooLarge = &parseError{status: 431, msg: "request header too large"}
	// errTooManyFields is a head with more fields than Limits.MaxHeaders.
	errTooManyFields = &parseError{status: 431, msg: "too many header fields"}
	errVersion       = &parseError{status: 505, msg: "HTTP version not supported"}
	// errCoding is a well-formed list of transfer codings the engine does not implement, such
	// as "gzip, chunked" (RFC 9112 §6.1).
	errCoding = &parseError{status: 501, msg: "transfer coding not implemented"}
)

// Head-level flags gathered while parsing the fields.
const (
	flagClose          uint16 = 1 << iota // Connection: close
	flagKeepAlive                         // Connection: keep-alive
	flagUpgrade                           // Connection: upgrade
	flagChunked                           // Transfer-Encoding ends with chunked
	flagTE                                // a Transfer-Encoding field is present
	flagExpectContinue                    // Expect: 100-continue
	flagRequestID                         // a non-empty x-request-id field is present
	flagUpgradeField                      // an Upgrade field is present
	flagVia                               // a Via field is present
)

// headerBlock is the parsed field section of a request or response head.
type headerBlock struct {
	raw      []byte
	fields   []field
	connOpts []span // extra field names listed in Connection, dropped when forwarding
	opts     optIndex
	// maxFields bounds the number of fields (Limits.MaxHeaders); 0 means no bound.
	maxFields int
	length    int64 // Content-Length, or -1 when absent
	hosts     int   // number of Host fields
	host      span  // value of the first Host field
	tes       int   // number of Transfer-Encoding fields
	te        span  // value of the first Transfer-Encoding field
	flags     uint16
	// requestID is the value of the first non-empty x-request-id field (flagRequestID).
	requestID span
	lastVia   int // index in fields of the last Via field, -1 when none
}

func (h *headerBlock) reset(raw []byte) {
	h.raw = raw
	h.fields = h.fields[:0]
	h.connOpts = h.connOpts[:0]
	h.length = -1
	h.hosts = 0
	h.host = span{}
	h.tes = 0
	h.te = span{}
	h.flags = 0
	h.requestID = span{}
	h.lastVia = -1
}

func (h *headerBlock) has(f uint16) bool { return h.flags&f != 0 }

// Header returns the value of the first field called name (any case), or nil.
func (h *headerBlock) Header(name string) []byte {
	for _, f := range h.fields {
		if f.name.end-f.name.start == len(name) && equalFoldString(h.raw[f.name.start:f.name.end], name) {
			return h.raw[f.value.start:f.value.end]
		}
	}
	return nil
}

// Headers yields every field name and value in the order received.
func (h *headerBlock) Headers() iter.Seq2[[]byte, []byte] {
	return func(yield func([]byte, []byte) bool) {
		for _, f := range h.fields {
			if !yield(h.raw[f.name.start:f.name.end], h.raw[f.value.start:f.value.end]) {
				return
			}
		}
	}
}

// ContentLength returns the declared body length, or -1 when there is no Content-Length.
func (h *headerBlock) ContentLength() int64 { return h.length }

// Chunked reports whether the body uses the chunked transfer coding.
func (h *headerBlock) Chunked() bool { return h.has(flagChunked) }

// forwarded reports whether field f goes to the next hop. Connection cannot remove the
// framing fields or Host: the engine frames the message by them, so dropping them would make
// the next hop read it differently.
func (h *headerBlock) forwarded(f *field) bool {
	switch f.kind {
	case kindHost, kindContentLength, kindTransferEncoding, kindRequestID, kindVia:
		return true
	}
	return !f.kind.hopByHop() && !f.listed
}

// parseFields parses the field lines in h.raw[pos:], which end with the empty line.
func (h *headerBlock) parseFields(pos int, request bool) error {
	raw := h.raw
	for pos < len(raw) {
		nl := bytes.IndexByte(raw[pos:], '\n')
		if nl < 0 {
			return badHead("unterminated header section")
		}
		end := pos + nl
		next := end + 1
		if end > pos && raw[end-1] == '\r' {
			end--
		}
		if end == pos {
			if len(h.connOpts) > 0 {
				h.markListed()
			}
			return nil
		}
		if h.maxFields > 0 && len(h.fields) == h.maxFields {
			return errTooManyFields
		}
		if raw[pos] == ' ' || raw[pos] == '\t' {
			return badHead("obsolete line folding")
		}
		colon := bytes.IndexByte(raw[pos:end], ':')
		if colon <= 0 {
			return badHead("header line without a field name")
		}
		name := raw[pos : pos+colon]
		for _, c := range name {
			if !isToken[c] {
				return badHead("invalid header field name")
			}
		}
		vs, ve := pos+colon+1, end
		for vs < ve && (raw[vs] == ' ' || raw[vs] == '\t') {
			vs++
		}
		for ve > vs && (raw[ve-1] == ' ' || raw[ve-1] == '\t') {
			ve--
		}
		value := raw[vs:ve]
		if !validValue(value) {
			return badHead("invalid character in header value")
		}
		kind := classify(name)
		h.fields = append(h.fields, field{name: span{pos, pos + colon}, value: span{vs, ve}, kind: kind})
		if kind != kindOther {
			if err := h.note(kind, vs, ve, request); err != nil {
				return err
			}
		}
		pos = next
	}
	return badHead("unterminated header section")
}

// note records what a field the engine cares about means for framing and forwarding.
func (h *headerBlock) note(kind fieldKind, vs, ve int, request bool) error {
	value := h.raw[vs:ve]
	switch kind {
	case kindHost:
		if h.hosts == 0 {
			h.host = span{vs, ve}
		}
		h.hosts++
	case kindContentLength:
		n, ok := parseLength(value)
		if !ok {
			return badHead("invalid Content-Length")
		}
		if h.length >= 0 && (request || n != h.length) {
			return badHead("multiple Content-Length fields")
		}
		h.length = n
	case kindTransferEncoding:
		h.flags |= flagTE
		if h.tes == 0 {
			h.te = span{vs, ve}
		}
		h.tes++
		for s := range listItems(value) {
			coding := codingName(value[s.start:s.end])
			if !isTokenBytes(coding) {
				// A quoted or empty name: a recipient could read the list another way.
				return badHead("invalid transfer coding")
			}
			if h.has(flagChunked) {
				// Chunked may only be the final coding, and only once (RFC 9112 §6.1).
				return badHead("chunked is not the final transfer coding")
			}
			if equalFold(coding, "chunked") {
				h.flags |= flagChunked
			}
		}
	case kindConnection, kindProxyConnection:
		for s := range listItems(value) {
			opt := value[s.start:s.end]
			switch {
			case equalFold(opt, "close"):
				h.flags |= flagClose
			case equalFold(opt, "keep-alive"):
				h.flags |= flagKeepAlive
			case equalFold(opt, "upgrade"):
				h.flags |= flagUpgrade
			case kind == kindConnection:
				h.connOpts = append(h.connOpts, span{vs + s.start, vs + s.end})
			}
		}
	case kindExpect:
		if equalFold(value, "100-continue") {
			h.flags |= flagExpectContinue
		}
	case kindRequestID:
		// The first non-empty id is the client's; an empty one counts as none.
		if len(value) > 0 && !h.has(flagRequestID) {
			h.flags |= flagRequestID
			h.requestID = span{vs, ve}
		}
	case kindUpgrade:
		h.flags |= flagUpgradeField
	case kindVia:
		h.flags |= flagVia
		h.lastVia = len(h.fields) - 1 // note runs after the field was appended
	}
	return nil
}

// responseHead is a parsed response head from an upstream.
type responseHead struct {
	status     int
	protoMinor int
	// rest is the status line after the version ("200 OK"), re-sent behind our own version.
	rest span
	headerBlock
}

// firstLine returns a head's first line without its line ending, and the index of the '\n' that
// ends it (-1 when there is none).
func firstLine(raw []byte) (line []byte, nl int) {
	nl = bytes.IndexByte(raw, '\n')
	if nl < 0 {
		return nil, -1
	}
	end := nl
	if end > 0 && raw[end-1] == '\r' {
		end--
	}
	return raw[:end], nl
}

// parse parses raw, a complete response head ending with its empty line.
func (r *responseHead) parse(raw []byte) error {
	r.reset(raw)
	line, nl := firstLine(raw)
	if nl < 0 {
		return badHead("unterminated status line")
	}
	if len(line) < 12 || line[8] != ' ' {
		return badHead("malformed status line")
	}
	minor, err := parseVersion(line[:8])
	if err != nil {
		return badHead("malformed status line")
	}
	r.protoMinor = minor
	code := line[9:12]
	if code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return badHead("malformed status code")
	}
	if len(line) > 12 && line[12] != ' ' {
		return badHead("malformed status line")
	}
	for _, c := range line[12:] {
		if c < ' ' && c != '\t' || c == 0x7f {
			return badHead("invalid character in reason phrase")
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	r.rest = span{9, len(line)}
	return r.parseFields(nl+1, false)
}

// headEnd returns the length of the head at the start of b (through its empty line), or -1.
// prev is the tail of bytes already read before b, so an end marker split across reads is found.
func headEnd(prev, b []byte) int {
	if len(b) == 0 {
		return -1
	}
	if n := len(prev); n > 0 {
		switch {
		case prev[n-1] == '\n' && b[0] == '\n':
			return 1
		case prev[n-1] == '\n' && b[0] == '\r' && len(b) > 1 && b[1] == '\n':
			return 2
		case n > 1 && prev[n-2] == '\n' && prev[n-1] == '\r' && b[0] == '\n':
			return 1
		}
	}
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
	}
}

// readHead reads one message head (start line through the empty line) from br, appending it to
// dst[:0]. Empty lines before the start line are skipped (RFC 9112 §2.2). It returns
// errHeadTooLarge once the head exceeds max bytes; other errors come from reading.
func readHead(br *bufio.Reader, dst []byte, max int) ([]byte, error) {
	dst = dst[:0]
	for skipped := 0; ; skipped++ {
		b, err := br.Peek(1)
		if err != nil {
			return dst, err
		}
		if b[0] != '\r' && b[0] != '\n' || skipped == 8 {
			break
		}
		br.Discard(1)
	}
	for {
		n := br.Buffered()
		if n == 0 {
			if _, err := br.Peek(1); err != nil {
				return dst, err
			}
			n = br.Buffered()
		}
		b, _ := br.Peek(n)
		if end := headEnd(dst, b); end >= 0 {
			if len(dst)+end > max {
				return dst, errHeadTooLarge
			}
			dst = append(dst, b[:end]...)
			br.Discard(end)
			return dst, nil
		}
		if len(dst)+len(b) > max {
			return dst, errHeadTooLarge
		}
		dst = append(dst, b...)
		br.Discard(len(b))
	}
}
