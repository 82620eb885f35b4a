package main

import (
	"bytes"
	"math/rand/v2"
)

// The field syntax of evhttp's heads, as pure functions: a field line, the hop-by-hop names,
// case folding, Content-Length, and the x-request-id it makes.

var crlf, crlf2 = []byte("\r\n"), []byte("\r\n\r\n")

// nextField parses the field line of h at p: its name and its value without the spaces around
// it, and where the next line starts.
func nextField(h []byte, p int) (name, value []byte, next int, ok bool) {
	e := bytes.Index(h[p:], crlf)
	if e < 0 {
		return nil, nil, len(h), false
	}
	line := h[p : p+e]
	next = p + e + 2
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, next, false
	}
	name = line[:colon]
	value = trimOWS(line[colon+1:])
	return name, value, next, true
}

// trimOWS cuts the spaces and tabs around b (bytes.Trim builds its set on every call).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// hop reports the hop-by-hop fields (RFC 9110 §7.6.1), which are never forwarded as received.
func hop(name []byte) bool {
	switch len(name) {
	case 2:
		return foldEq(name, "te")
	case 7:
		return foldEq(name, "upgrade") || foldEq(name, "trailer")
	case 10:
		return foldEq(name, "connection") || foldEq(name, "keep-alive")
	case 16:
		return foldEq(name, "proxy-connection")
	case 17:
		return foldEq(name, "transfer-encoding")
	case 18:
		return foldEq(name, "proxy-authenticate")
	case 19:
		return foldEq(name, "proxy-authorization")
	}
	return false
}

// foldEq reports whether b is s (lower case) ignoring ASCII case.
func foldEq(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x := b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if x != s[i] {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value (or a status code): decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, b := range v {
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	return n, true
}

// newReqID writes a random (version 4) UUID into dst, as meshentry makes its x-request-id.
func newReqID(dst *[36]byte) []byte {
	const hex = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12
	lo = lo&^(0x3<<62) | 0x2<<62
	j := 0
	for i := range 16 {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		var x byte
		if i < 8 {
			x = byte(hi >> (56 - 8*i))
		} else {
			x = byte(lo >> (56 - 8*(i-8)))
		}
		dst[j], dst[j+1] = hex[x>>4], hex[x&0xf]
		j += 2
	}
	return dst[:]
}
