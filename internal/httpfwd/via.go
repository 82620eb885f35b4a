package httpfwd

import (
	"bytes"
	"math/rand/v2"
	"strconv"
)

// The engine names itself in a Via field of each request it forwards (RFC 9110 §7.6.3) and
// refuses a request that already names it: a request routed back to the proxy (its own
// listener under ALLOW_ANY, say) would otherwise be forwarded to itself again and again
// until every descriptor is used. Envoy and Squid detect loops the same way. The token is
// unique per process, so a chain of two meshentry proxies is not taken for a loop.

// newViaToken returns a random pseudonym for the Via field.
func newViaToken() string {
	return "meshentry-" + strconv.FormatUint(rand.Uint64()|1<<63, 16)
}

// processViaToken is the default ViaToken, drawn once per process and never changed, so that
// the Servers of one process (a forward and a capture listener, say) all recognise a request
// that went through any of them, while another process in a chain has its own.
var processViaToken = newViaToken()

// validViaToken reports whether t can stand as received-by in a Via field: a token.
func validViaToken(t string) bool { return validName(t) }

// looped reports whether a Via field of h names token as a recipient.
func (h *headerBlock) looped(token string) bool {
	if !h.has(flagVia) {
		return false
	}
	for i := range h.fields {
		f := &h.fields[i]
		if f.kind != kindVia {
			continue
		}
		v := h.raw[f.value.start:f.value.end]
		for s := range listItems(v) {
			if equalFoldString(viaRecipient(v[s.start:s.end]), token) {
				return true
			}
		}
	}
	return false
}

// viaRecipient returns the received-by part of a Via element, "1.1 name (comment)".
func viaRecipient(item []byte) []byte {
	sp := bytes.IndexAny(item, " \t")
	if sp < 0 {
		return nil
	}
	rest := bytes.TrimLeft(item[sp:], " \t")
	if end := bytes.IndexAny(rest, " \t"); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// writeVia writes the request's Via fields with ours appended to the last one, or a Via field
// of ours alone; the caller skips Via fields in its own loop.
func (c *conn) writeVia(i int) {
	w, req := c.ubw, &c.req
	if i >= 0 {
		f := &req.fields[i]
		w.Write(req.raw[f.name.start:f.value.end])
		if i != req.lastVia {
			w.WriteString("\r\n")
			return
		}
		if f.value.end > f.value.start {
			w.WriteString(", ")
		}
	} else {
		w.WriteString("Via: ")
	}
	w.WriteString("1.1 ")
	w.WriteString(c.s.via)
	w.WriteString("\r\n")
}
