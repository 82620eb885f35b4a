package sniff

import (
	"errors"
	"fmt"
	"strings"
)

// Hello is what a proxy routes on from a TLS ClientHello.
type Hello struct {
	// ServerName is the SNI host_name, lowercased; empty when the client sent none.
	ServerName string
	// ALPN lists the offered application protocols in the client's order of preference.
	ALPN []string
}

// ErrNeedMore reports that the bytes end before the ClientHello does, so the caller should read more.
var ErrNeedMore = errors.New("sniff: need more bytes")

// ErrNotTLS reports that the bytes do not start a TLS handshake with a ClientHello.
var ErrNotTLS = errors.New("sniff: not a TLS ClientHello")

// ErrMalformed is wrapped by every error for input that starts like a ClientHello but breaks its grammar.
var ErrMalformed = errors.New("sniff: malformed ClientHello")

// MaxHelloLen is the largest ClientHello body ParseClientHello accepts; real ones are a few KiB even with
// post-quantum key shares and ECH, so anything bigger is refused before the caller buffers it.
const MaxHelloLen = 64 << 10

const (
	recordHeaderLen      = 5
	maxRecordLen         = 1 << 14 // RFC 8446 §5.1: TLSPlaintext.length MUST NOT exceed 2^14.
	handshakeHeaderLen   = 4
	recordTypeHandshake  = 22
	handshakeClientHello = 1
	extServerName        = 0
	extALPN              = 16
	sniHostName          = 0
	maxServerNameLen     = 255
	maxSessionIDLen      = 32
	randomLen            = 32
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ParseClientHello parses the TLS records at the start of b that carry a ClientHello and returns its
// server name and ALPN protocols.
//
// It returns ErrNeedMore while b is a clean prefix of a ClientHello, ErrNotTLS when b does not start a
// TLS handshake with a ClientHello, and an error wrapping ErrMalformed otherwise. Once it has returned
// anything but ErrNeedMore, appending bytes to b does not change the answer. It never modifies b, and it
// allocates only for the returned strings unless the ClientHello is fragmented across records.
func ParseClientHello(b []byte) (Hello, error) {
	msg, err := handshakeMessage(b)
	if err != nil {
		return Hello{}, err
	}
	return parseHelloBody(msg[handshakeHeaderLen:])
}

// handshakeMessage returns the ClientHello handshake message, header included, reassembled from as many
// records as it spans; it aliases b when one record holds it all, which is the usual case.
func handshakeMessage(b []byte) ([]byte, error) {
	var (
		hdr     [handshakeHeaderLen]byte
		have    int // handshake bytes seen so far, across records
		need    = -1
		records int
		off     int
	)
	for {
		first := records == 0
		rest := b[off:]
		if len(rest) < 1 {
			return nil, ErrNeedMore
		}
		if rest[0] != recordTypeHandshake {
			if first {
				return nil, ErrNotTLS
			}
			return nil, malformed("record %d has content type %d before the ClientHello ended", records+1, rest[0])
		}
		if len(rest) < 2 {
			return nil, ErrNeedMore
		}
		if rest[1] != 3 {
			if first {
				return nil, ErrNotTLS
			}
			return nil, malformed("record %d has version major %d", records+1, rest[1])
		}
		if len(rest) < recordHeaderLen {
			return nil, ErrNeedMore
		}
		n := int(rest[3])<<8 | int(rest[4])
		if n == 0 || n > maxRecordLen {
			return nil, malformed("record %d has length %d, want 1 to %d", records+1, n, maxRecordLen)
		}
		payload := rest[recordHeaderLen:min(len(rest), recordHeaderLen+n)]
		// The handshake header may itself be split across records, so collect it byte by byte and check
		// it as soon as each byte is in: a non-ClientHello or an oversized one is refused without waiting.
		for i := 0; have+i < handshakeHeaderLen && i < len(payload); i++ {
			hdr[have+i] = payload[i]
			if have+i == 0 && hdr[0] != handshakeClientHello {
				return nil, ErrNotTLS
			}
			if have+i == handshakeHeaderLen-1 {
				bodyLen := int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
				if bodyLen > MaxHelloLen {
					return nil, malformed("ClientHello length %d exceeds %d", bodyLen, MaxHelloLen)
				}
				need = handshakeHeaderLen + bodyLen
			}
		}
		if len(payload) < n {
			return nil, ErrNeedMore
		}
		records++
		have += n
		off += recordHeaderLen + n
		if need >= 0 && have >= need {
			if have > need {
				return nil, malformed("%d bytes follow the ClientHello in its last record", have-need)
			}
			break
		}
	}
	if records == 1 {
		return b[recordHeaderLen : recordHeaderLen+need], nil
	}
	msg := make([]byte, 0, need)
	for off = 0; len(msg) < need; {
		n := int(b[off+3])<<8 | int(b[off+4])
		msg = append(msg, b[off+recordHeaderLen:off+recordHeaderLen+n]...)
		off += recordHeaderLen + n
	}
	return msg, nil
}

// parseHelloBody parses a ClientHello body (RFC 8446 §4.1.2) whose length is already known to be exact.
func parseHelloBody(body []byte) (Hello, error) {
	c := cursor{b: body}
	ver, ok := c.u16()
	if !ok {
		return Hello{}, malformed("truncated legacy_version")
	}
	if ver>>8 != 3 {
		return Hello{}, malformed("legacy_version %#04x", ver)
	}
	if _, ok := c.bytes(randomLen); !ok {
		return Hello{}, malformed("truncated random")
	}
	sid, ok := c.vec8()
	if !ok {
		return Hello{}, malformed("truncated legacy_session_id")
	}
	if len(sid) > maxSessionIDLen {
		return Hello{}, malformed("legacy_session_id length %d exceeds %d", len(sid), maxSessionIDLen)
	}
	suites, ok := c.vec16()
	if !ok {
		return Hello{}, malformed("truncated cipher_suites")
	}
	if len(suites) < 2 || len(suites)%2 != 0 {
		return Hello{}, malformed("cipher_suites length %d", len(suites))
	}
	comp, ok := c.vec8()
	if !ok {
		return Hello{}, malformed("truncated legacy_compression_methods")
	}
	if len(comp) < 1 {
		return Hello{}, malformed("empty legacy_compression_methods")
	}
	var h Hello
	if c.empty() {
		// SSL 3.0 and some TLS 1.0 clients send no extensions block at all.
		return h, nil
	}
	exts, ok := c.vec16()
	if !ok {
		return Hello{}, malformed("truncated extensions")
	}
	if !c.empty() {
		return Hello{}, malformed("%d bytes after extensions", len(c.b))
	}
	var sawSNI, sawALPN bool
	e := cursor{b: exts}
	for !e.empty() {
		typ, ok := e.u16()
		if !ok {
			return Hello{}, malformed("truncated extension type")
		}
		data, ok := e.vec16()
		if !ok {
			return Hello{}, malformed("truncated extension %d", typ)
		}
		var err error
		switch typ {
		case extServerName:
			if sawSNI {
				return Hello{}, malformed("duplicate server_name extension")
			}
			sawSNI = true
			h.ServerName, err = parseServerName(data)
		case extALPN:
			if sawALPN {
				return Hello{}, malformed("duplicate application_layer_protocol_negotiation extension")
			}
			sawALPN = true
			h.ALPN, err = parseALPN(data)
		}
		if err != nil {
			return Hello{}, err
		}
	}
	return h, nil
}

// parseServerName parses the server_name extension (RFC 6066 §3) and returns its host_name, lowercased.
func parseServerName(data []byte) (string, error) {
	c := cursor{b: data}
	list, ok := c.vec16()
	if !ok || !c.empty() {
		return "", malformed("server_name extension length does not match its list")
	}
	if len(list) == 0 {
		return "", malformed("empty server_name list")
	}
	var name []byte
	l := cursor{b: list}
	for !l.empty() {
		typ, ok := l.u8()
		if !ok {
			return "", malformed("truncated server_name name_type")
		}
		v, ok := l.vec16()
		if !ok {
			return "", malformed("truncated server_name entry")
		}
		if typ != sniHostName {
			// Other name types are reserved for future use; RFC 6066 says to skip what we do not know.
			continue
		}
		if name != nil {
			return "", malformed("more than one host_name in server_name")
		}
		if err := checkServerName(v); err != nil {
			return "", err
		}
		name = v
	}
	return lowerASCII(name), nil
}

// checkServerName refuses names no DNS host can have, so that callers never route on, or log, control
// bytes or non-ASCII; RFC 6066 also forbids the trailing dot.
func checkServerName(name []byte) error {
	if len(name) == 0 || len(name) > maxServerNameLen {
		return malformed("host_name length %d, want 1 to %d", len(name), maxServerNameLen)
	}
	for _, ch := range name {
		if ch <= ' ' || ch >= 0x7f {
			return malformed("host_name contains byte %#02x", ch)
		}
	}
	if name[len(name)-1] == '.' {
		return malformed("host_name %q ends with a dot", name)
	}
	return nil
}

// parseALPN parses the application_layer_protocol_negotiation extension (RFC 7301 §3.1). All protocol
// names share one string so that the whole list costs two allocations however long it is.
func parseALPN(data []byte) ([]string, error) {
	c := cursor{b: data}
	list, ok := c.vec16()
	if !ok || !c.empty() {
		return nil, malformed("ALPN extension length does not match its list")
	}
	if len(list) == 0 {
		return nil, malformed("empty ALPN protocol list")
	}
	count := 0
	for l := (cursor{b: list}); !l.empty(); count++ {
		p, ok := l.vec8()
		if !ok {
			return nil, malformed("truncated ALPN protocol name")
		}
		if len(p) == 0 {
			return nil, malformed("empty ALPN protocol name")
		}
	}
	all := string(list)
	protos := make([]string, 0, count)
	for i := 0; i < len(all); {
		n := int(all[i])
		protos = append(protos, all[i+1:i+1+n])
		i += 1 + n
	}
	return protos, nil
}

// lowerASCII returns b as a string with ASCII letters lowercased, in one allocation.
func lowerASCII(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for _, ch := range b {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		sb.WriteByte(ch)
	}
	return sb.String()
}

// cursor reads TLS presentation-language fields from a byte slice; every read is bounds-checked and
// reports false instead of panicking when the slice is too short.
type cursor struct {
	b []byte
}

func (c *cursor) empty() bool { return len(c.b) == 0 }

func (c *cursor) u8() (int, bool) {
	if len(c.b) < 1 {
		return 0, false
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v, true
}

func (c *cursor) u16() (int, bool) {
	if len(c.b) < 2 {
		return 0, false
	}
	v := int(c.b[0])<<8 | int(c.b[1])
	c.b = c.b[2:]
	return v, true
}

func (c *cursor) bytes(n int) ([]byte, bool) {
	if n < 0 || len(c.b) < n {
		return nil, false
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v, true
}

func (c *cursor) vec8() ([]byte, bool) {
	n, ok := c.u8()
	if !ok {
		return nil, false
	}
	return c.bytes(n)
}

func (c *cursor) vec16() ([]byte, bool) {
	n, ok := c.u16()
	if !ok {
		return nil, false
	}
	return c.bytes(n)
}
