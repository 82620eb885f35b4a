package httpfwd

import (
	"bufio"
	"net/http"
	"strings"
)

// rewritePath computes the path sent upstream under the route's rewrite, into c.rt.path: the
// matched prefix (or the whole path) replaced by URI, or the regex rewrite applied to the
// path; the query is kept as it was.
func (c *conn) rewritePath(rw *Rewrite) {
	if rw == nil || rw.URI == "" && rw.Regex == nil {
		return
	}
	full := requestPath(&c.req)
	path, query := full, []byte(nil)
	for i, b := range full {
		if b == '?' {
			path, query = full[:i], full[i:]
			break
		}
	}
	var out []byte
	switch {
	case rw.Regex != nil:
		out = rw.Regex.ReplaceAll(path, []byte(rw.RegexReplace))
	case rw.Prefix != "" && len(path) >= len(rw.Prefix) && equalFold(path[:len(rw.Prefix)], rw.Prefix):
		// The match may have ignored case: the prefix is cut by its length.
		out = append([]byte(rw.URI), path[len(rw.Prefix):]...)
	default:
		out = []byte(rw.URI)
	}
	c.rt.path = append(out, query...)
}

// RegexSubstitution turns an Envoy/RE2 substitution, whose groups are \1 to \9, into the
// template regexp.ReplaceAll takes (${1}), escaping any '$' of its own.
func RegexSubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteByte('}')
			i++
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case s[i] == '$':
			b.WriteString("$$")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// applyH2C applies the route's request changes to a request bound for an h2c upstream.
func (c *conn) applyH2C(hreq *http.Request) {
	a := c.rt.act
	if a == nil {
		return
	}
	if rw := a.Rewrite; rw != nil && rw.Authority != "" {
		hreq.Host = rw.Authority
	}
	if c.rt.path != nil {
		if u, err := targetURL(string(c.rt.path)); err == nil {
			u.Host = hreq.URL.Host
			hreq.URL = u
		}
	}
	applyOps(hreq.Header, &a.Request)
}

// applyOps applies header changes to an http.Header.
func applyOps(h http.Header, ops *HeaderOps) {
	for _, r := range ops.Remove {
		h.Del(r)
	}
	for _, f := range ops.Set {
		h.Set(f.Name, f.Value)
	}
	for _, f := range ops.Add {
		h.Add(f.Name, f.Value)
	}
}

// writeOps writes the Set and Add fields of ops into a head, with control characters in the
// values replaced by spaces so that a value cannot split the head.
func (c *conn) writeOps(w *bufio.Writer, ops *HeaderOps) {
	for _, list := range [2][]Field{ops.Set, ops.Add} {
		for _, f := range list {
			if !validName(f.Name) {
				continue
			}
			w.WriteString(f.Name)
			w.WriteString(": ")
			for i := range len(f.Value) {
				b := f.Value[i]
				if b < ' ' && b != '\t' || b == 0x7f {
					b = ' '
				}
				w.WriteByte(b)
			}
			w.WriteString("\r\n")
		}
	}
}
