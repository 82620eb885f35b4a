package balance

import (
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// HashRequest is what a consistent-hash key is taken from, in terms any HTTP engine can supply.
type HashRequest struct {
	// Header returns a request header's first value, "" when absent; nil means no headers (TCP).
	Header func(name string) string
	// RawQuery is the request URL's query without the '?'.
	RawQuery string
	// Source is the client's address.
	Source netip.Addr
	// Conn names the downstream connection (its remote and local addresses), from which the value
	// of a cookie the proxy sets is made, as Envoy does: requests racing on one connection then get
	// the same cookie.
	Conn string
}

// Key returns the request's hash key under the policy and whether it has one; without one the
// proxy calls Pick, which picks at random. For an httpCookie policy with a TTL and a request
// without the cookie, Key makes the cookie's value, keys on it, and returns the Set-Cookie header
// value the proxy must add to the response, so the client's next requests land where this one did.
// It allocates only when it builds that header or decodes an escaped query value.
func (hp HashPolicy) Key(r HashRequest) (key uint64, ok bool, setCookie string) {
	switch {
	case hp.Header != "":
		if r.Header == nil {
			return 0, false, ""
		}
		if v := r.Header(hp.Header); v != "" {
			return HashString(v), true, ""
		}
	case hp.Cookie != nil:
		if r.Header != nil {
			if v, found := cookieValue(r.Header("Cookie"), hp.Cookie.Name); found {
				return HashString(v), true, ""
			}
		}
		if hp.Cookie.TTL > 0 {
			v := strconv.FormatUint(HashString(r.Conn), 16)
			return HashString(v), true, setCookieValue(hp.Cookie, v)
		}
	case hp.SourceIP:
		if r.Source.IsValid() {
			b := r.Source.Unmap().As16()
			h := uint64(fnvOffset)
			for _, c := range b {
				h = fnvByte(h, c)
			}
			return mix(h), true, ""
		}
	case hp.Query != "":
		if v, found := queryValue(r.RawQuery, hp.Query); found {
			return HashString(v), true, ""
		}
	}
	return 0, false, ""
}

// cookieValue finds name in a Cookie header ("a=1; b=2") without splitting it into a slice.
func cookieValue(header, name string) (string, bool) {
	for header != "" {
		var pair string
		pair, header, _ = strings.Cut(header, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
		if k == name {
			return strings.Trim(v, `"`), true
		}
	}
	return "", false
}

// queryValue finds the first value of name in a raw query, decoding it only when it is escaped.
func queryValue(query, name string) (string, bool) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if d, err := url.QueryUnescape(v); err == nil {
				v = d
			}
		}
		return v, true
	}
	return "", false
}

// setCookieValue is the Set-Cookie value Envoy sends for a generated hash cookie.
func setCookieValue(c *CookiePolicy, value string) string {
	var b strings.Builder
	b.WriteString(c.Name)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Max-Age=")
	b.WriteString(strconv.FormatInt(int64(max(c.TTL.Seconds(), 1)), 10))
	if c.Path != "" {
		b.WriteString("; Path=")
		b.WriteString(c.Path)
	}
	b.WriteString("; HttpOnly")
	return b.String()
}
