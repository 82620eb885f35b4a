package httpfwd

import (
	"bytes"
	"errors"
)

// errBadChunk is invalid chunked framing.
var errBadChunk = errors.New("invalid chunked encoding")

// errTooManyTrailers is a trailer section with more fields than Limits.MaxHeaders. It comes
// joined with errBadChunk, so every path that ends a malformed body ends this one too.
var errTooManyTrailers = errors.New("too many trailer fields")

func badChunk(msg string) error {
	return &copyError{read: true, err: errors.Join(errBadChunk, errors.New(msg))}
}

// crlf ends a chunk's data and the trailer section.
var crlf = []byte("\r\n")

// chunkSource supplies the bytes of a chunked body to chunkedReader; it decides how to wait
// (flushing and refreshing deadlines, say) before a read that may block.
type chunkSource interface {
	// chunkLine returns the next line through its LF, valid until the next read. A line
	// longer than the source's buffer is a badChunk error.
	chunkLine() ([]byte, error)
	// chunkPeek returns the next n bytes without consuming them.
	chunkPeek(n int) ([]byte, error)
	// chunkDiscard consumes n bytes that chunkPeek returned.
	chunkDiscard(n int)
}

// chunkedReader is the one chunked decoder (RFC 9112 §7.1), used by the HTTP/1 body copies
// and by the h2c request body: the caller reads a size line, moves that many data bytes
// itself, calls dataEnd, and after the last (zero) chunk reads trailer lines until the last.
// Keeping the framing rules in one place means the two paths cannot drift apart on what they
// accept.
type chunkedReader struct {
	src        chunkSource
	maxTrailer int // bytes a trailer section may take
	trailer    int // trailer bytes read so far
	// maxFields bounds the fields of the trailer section, as Limits.MaxHeaders bounds a
	// head's (Envoy counts trailers against max_headers_count alike); 0 means no bound.
	maxFields int
	fields    int // trailer fields read so far
}

// reset starts a new body from src, with no bound on the number of trailer fields: a caller
// that forwards the trailers sets maxFields after it.
func (d *chunkedReader) reset(src chunkSource, maxTrailer int) {
	d.src, d.maxTrailer, d.trailer, d.maxFields, d.fields = src, maxTrailer, 0, 0, 0
}

// sizeLine reads one chunk-size line and returns the size and the line as received.
func (d *chunkedReader) sizeLine() (int64, []byte, error) {
	line, err := d.src.chunkLine()
	if err != nil {
		return 0, nil, err
	}
	size, err := parseChunkLine(line)
	if err != nil {
		return 0, nil, err
	}
	return size, line, nil
}

// dataEnd consumes the CRLF that must follow a chunk's data.
func (d *chunkedReader) dataEnd() error {
	b, err := d.src.chunkPeek(2)
	if err != nil {
		return readFail(err)
	}
	if b[0] != '\r' || b[1] != '\n' {
		return badChunk("chunk data not followed by CRLF")
	}
	d.src.chunkDiscard(2)
	return nil
}

// trailerLine reads one line of the trailer section. last reports the closing empty line;
// drop reports a field that must not be forwarded in a trailer (see forbiddenInTrailer).
func (d *chunkedReader) trailerLine() (line []byte, last, drop bool, err error) {
	line, err = d.src.chunkLine()
	if err != nil {
		return nil, false, false, err
	}
	if d.trailer += len(line); d.trailer > d.maxTrailer {
		return nil, false, false, badChunk("trailer section too large")
	}
	if err := checkTrailerLine(line); err != nil {
		return nil, false, false, err
	}
	if len(line) == 2 {
		return line, true, false, nil
	}
	if d.fields++; d.maxFields > 0 && d.fields > d.maxFields {
		// Checked before the line is returned, so a caller never forwards field 101.
		return nil, false, false, &copyError{read: true, err: errors.Join(errBadChunk, errTooManyTrailers)}
	}
	colon := bytes.IndexByte(line, ':')
	return line, false, forbiddenInTrailer(line[:colon]), nil
}

// parseChunkLine parses "size[;ext]CRLF". It is strict on purpose: lenient chunk parsing is what
// request smuggling exploits, so bare LF, whitespace and signs are all refused.
func parseChunkLine(line []byte) (int64, error) {
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return 0, badChunk("chunk size line not terminated by CRLF")
	}
	line = line[:len(line)-2]
	var size int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var v byte
		switch {
		case '0' <= c && c <= '9':
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			goto ext
		}
		if i == 15 {
			return 0, badChunk("chunk size too large")
		}
		size = size<<4 | int64(v)
	}
ext:
	if i == 0 {
		return 0, badChunk("invalid chunk size")
	}
	if rest := line[i:]; len(rest) > 0 {
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		if j == len(rest) || rest[j] != ';' {
			return 0, badChunk("invalid chunk size")
		}
		for _, c := range rest {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0, badChunk("invalid character in chunk extension")
			}
		}
	}
	return size, nil
}

// validChunkExt reports whether the chunk line, which parseChunkLine accepted, has no extension
// or well-formed ones (RFC 9112 §7.1.1):
//
//	*( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
func validChunkExt(line []byte) bool {
	line = line[:len(line)-2] // CRLF
	i := 0
	for i < len(line) && isHex(line[i]) {
		i++
	}
	ows := func() {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
	}
	token := func() bool {
		start := i
		for i < len(line) && isToken[line[i]] {
			i++
		}
		return i > start
	}
	for i < len(line) {
		ows()
		if i == len(line) || line[i] != ';' {
			return false // trailing whitespace or junk
		}
		i++
		ows()
		if !token() {
			return false
		}
		name := i
		ows()
		if i == len(line) || line[i] != '=' {
			i = name
			continue
		}
		i++
		ows()
		if i < len(line) && line[i] == '"' {
			if !quotedString(line, &i) {
				return false
			}
		} else if !token() {
			return false
		}
	}
	return true
}

// checkTrailerLine accepts the closing CRLF or a well-formed "name: value" line.
func checkTrailerLine(line []byte) error {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return badChunk("trailer line not terminated by CRLF")
	}
	line = line[:len(line)-2]
	if len(line) == 0 {
		return nil
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return badChunk("malformed trailer field")
	}
	for _, c := range line[:colon] {
		if !isToken[c] {
			return badChunk("malformed trailer field")
		}
	}
	if !validValue(line[colon+1:]) {
		return badChunk("invalid character in trailer field")
	}
	return nil
}
