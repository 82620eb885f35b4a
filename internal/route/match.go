package route

import "bytes"

// HTTP returns the rule that takes req: nil when no VirtualService binds req.Host on req.Port
// (the host's own service applies), a route with NotFound set when one binds it but no rule
// matches. It does not allocate.
func (t *Table) HTTP(req *Request) *HTTPRoute {
	vh := t.vhost(req)
	if vh == nil {
		return nil
	}
	mc := matchContext{req: req, src: t.sourceNamespace(req)}
	mc.path, mc.query = splitTarget(req.Path)
	for i := range vh.rules {
		r := vh.rules[i].rule
		if r.prefiltered && !r.pathMayMatch(mc.path) {
			continue
		}
		if r.takes(&mc) {
			return vh.rules[i].out
		}
	}
	return vh.notFound
}

// Binds reports whether a VirtualService binds host on port at the proxy's first gateway (the
// sidecar's mesh): whether HTTP may route such a request at all. host is normalized as
// Request.Host is. It does not allocate, so that a consumer can ask it per request.
func (t *Table) Binds(host string, port uint32) bool {
	return t.vhost(&Request{Host: host, Port: port}) != nil
}

func (t *Table) vhost(req *Request) *vhost {
	gw := req.Gateway
	if gw == "" {
		gw = t.first
	}
	gt := t.gateways[gw]
	if gt == nil {
		return nil
	}
	ht := gt.http[req.Port]
	if ht == nil {
		return nil
	}
	return ht.lookup(req.Host)
}

func (t *Table) sourceNamespace(req *Request) string {
	if req.SourceNamespace != "" {
		return req.SourceNamespace
	}
	return t.proxy.Namespace
}

// splitTarget separates the path from the query at the first '?'.
func splitTarget(target []byte) (path, query []byte) {
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		return target[:i], target[i+1:]
	}
	return target, nil
}

// headerCacheSize is how many distinct header names a request remembers while it is matched;
// names numbered beyond it are looked up each time.
const headerCacheSize = 32

// matchContext is one request being matched: its parts and the header values looked up so far.
// It lives on the matching goroutine's stack.
type matchContext struct {
	req         *Request
	path, query []byte
	src         string
	vals        [headerCacheSize][]byte
	state       [headerCacheSize]uint8 // 0 not looked up, 1 absent, 2 present
}

// header returns a header's value, asking the request only once per name.
func (mc *matchContext) header(f *fieldMatch) ([]byte, bool) {
	if mc.req.Headers == nil {
		return nil, false
	}
	if f.id >= headerCacheSize {
		return mc.req.Headers.Header(f.name)
	}
	switch mc.state[f.id] {
	case 1:
		return nil, false
	case 2:
		return mc.vals[f.id], true
	}
	v, ok := mc.req.Headers.Header(f.name)
	mc.state[f.id], mc.vals[f.id] = 1, v
	if ok {
		mc.state[f.id] = 2
	}
	return v, ok
}

// takes reports whether any applicable match block holds; a rule without blocks takes all.
func (r *httpRule) takes(mc *matchContext) bool {
	if len(r.matches) == 0 {
		return true
	}
	for i := range r.matches {
		if r.matches[i].excluded == "" && fieldOK(r.matches[i].holds(mc)) {
			return true
		}
	}
	return false
}

// fieldOK reports whether holds found no failing field.
func fieldOK(field, _ string) bool { return field == "" }

// holds returns "" when every field of the block holds, else the first field that does not and,
// for headers and query parameters, its name (for explain, without allocating).
func (m *httpMatch) holds(mc *matchContext) (field, name string) {
	req, path, query, src := mc.req, mc.path, mc.query, mc.src
	switch {
	case m.port != 0 && m.port != req.Port:
		return "port", ""
	case m.sourceNamespace != "" && m.sourceNamespace != src:
		return "sourceNamespace", ""
	case m.uri != nil && !m.uri.Match(path):
		return "uri", ""
	case m.scheme != nil && !m.scheme.MatchString(req.Scheme):
		return "scheme", ""
	case m.method != nil && !m.method.MatchString(req.Method):
		return "method", ""
	case m.authority != nil && !m.authority.MatchString(req.Authority):
		return "authority", ""
	}
	for i := range m.headers {
		f := &m.headers[i]
		v, ok := mc.header(f)
		if f.invert && f.m.kind != matchPresent {
			ok = true // Istio sets treat_missing_header_as_empty on withoutHeaders value matches
		}
		if (ok && f.m.Match(v)) == f.invert {
			if f.invert {
				return "withoutHeaders", f.name
			}
			return "headers", f.name
		}
	}
	for i := range m.query {
		if !queryHas(query, &m.query[i]) {
			return "queryParams", m.query[i].name
		}
	}
	return "", ""
}

// queryHas reports whether a query string has the parameter with a matching value. Values are
// compared as sent, without percent-decoding, as Envoy's query parameter matcher does.
func queryHas(query []byte, f *fieldMatch) bool {
	for len(query) > 0 {
		var pair []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			pair, query = query, nil
		}
		key, val := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			key, val = pair[:i], pair[i+1:]
		}
		if string(key) == f.name && f.m.Match(val) {
			return true
		}
	}
	return false
}
