package route

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// fieldMatch is one header or query parameter condition.
type fieldMatch struct {
	name string
	// id numbers the header name across the table, so a request looks each name up once.
	id     int
	m      Matcher
	invert bool // withoutHeaders: the condition must not hold
}

// httpMatch is one compiled match block; the fields within it must all hold.
type httpMatch struct {
	name                           string
	uri, scheme, method, authority *Matcher
	headers                        []fieldMatch
	query                          []fieldMatch
	port                           uint32
	sourceNamespace                string
	// excluded says why the block can never apply to this proxy (sourceLabels, gateways); such
	// blocks stay for explain but are skipped when matching.
	excluded string
}

// httpRule is one compiled rule of spec.http, shared by every port it is built for.
type httpRule struct {
	index   int
	name    string
	matches []httpMatch
	// never is set when the rule has match blocks and none applies to this proxy.
	never bool
	// uriPrefixes, when prefiltered, are literal prefixes one of which every path the rule can
	// take starts with (one per applicable block): a cheap test before the blocks are tried.
	uriPrefixes []string
	prefiltered bool
	// spec is kept to build the per-port outcome.
	spec *networking.HTTPRoute
}

// compileHTTPMatch compiles one match block for a proxy seen as gateway gw.
func compileHTTPMatch(m *networking.HTTPMatchRequest, b *builder, gw, ns string) (httpMatch, error) {
	out := httpMatch{name: m.Name, port: m.Port, sourceNamespace: m.SourceNamespace}
	var err error
	one := func(sm *networking.StringMatch, fold bool, what string) *Matcher {
		if sm == nil || err != nil {
			return nil
		}
		c, e := compileMatch(sm, fold)
		if e != nil {
			err = fmt.Errorf("%s: %w", what, e)
			return nil
		}
		return &c
	}
	out.uri = one(m.Uri, m.IgnoreUriCase, "uri")
	out.scheme = one(m.Scheme, false, "scheme")
	out.method = one(m.Method, false, "method")
	out.authority = one(m.Authority, false, "authority")
	if err != nil {
		return out, err
	}
	if out.headers, err = fieldMatches(m.Headers, nil, false, true); err != nil {
		return out, fmt.Errorf("headers: %w", err)
	}
	if out.headers, err = fieldMatches(m.WithoutHeaders, out.headers, true, true); err != nil {
		return out, fmt.Errorf("withoutHeaders: %w", err)
	}
	for i := range out.headers {
		out.headers[i].id = b.headerID(out.headers[i].name)
	}
	if out.query, err = fieldMatches(m.QueryParams, nil, false, false); err != nil {
		return out, fmt.Errorf("queryParams: %w", err)
	}
	out.excluded = b.excludedBy(m.SourceLabels, m.Gateways, gw, ns)
	return out, nil
}

// headerID returns the number of a header name, giving new names the next one.
func (b *builder) headerID(name string) int {
	id, ok := b.headerIDs[name]
	if !ok {
		id = len(b.headerIDs)
		b.headerIDs[name] = id
	}
	return id
}

// fieldMatches compiles a map of header or query conditions in name order, so matching and
// explain are deterministic; header names are lowered, query parameter names are not.
func fieldMatches(in map[string]*networking.StringMatch, into []fieldMatch, invert, lower bool) ([]fieldMatch, error) {
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		sm := in[k]
		if sm.GetRegex() == "*" {
			sm = nil // Istio reads regex "*" on a header or parameter as "present", not as RE2
		}
		m, err := compileMatch(sm, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		name := k
		if lower {
			name = strings.ToLower(k)
		}
		into = append(into, fieldMatch{name: name, m: m, invert: invert})
	}
	return into, nil
}

// excludedBy says why a block's gateways or sourceLabels rule out this proxy, "" when they do
// not. As Istio's sourceMatchHTTP: a block naming gateways is judged by them alone, otherwise by
// its sourceLabels against the proxy's labels.
func (b *builder) excludedBy(labels map[string]string, gateways []string, gw, ns string) string {
	if len(gateways) > 0 {
		for _, g := range gateways {
			if b.names(g, ns, gw) {
				return ""
			}
		}
		return fmt.Sprintf("gateways %v do not include %s", gateways, gw)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got, ok := b.p.Labels[k]; !ok || got != labels[k] {
			return fmt.Sprintf("sourceLabels %s=%s: the proxy's labels do not have it", k, labels[k])
		}
	}
	return ""
}

// compileHTTPRule compiles a rule's match blocks; its outcome is built per port later.
func compileHTTPRule(doc *config.Document, i int, r *networking.HTTPRoute, b *builder, gw string) (*httpRule, error) {
	rule := &httpRule{index: i, name: r.Name, spec: r}
	for j, m := range r.Match {
		cm, err := compileHTTPMatch(m, b, gw, doc.Namespace)
		if err != nil {
			return nil, fmt.Errorf("http[%d].match[%d]: %w", i, j, err)
		}
		rule.matches = append(rule.matches, cm)
	}
	if len(rule.matches) > 0 {
		rule.never = true
		for k := range rule.matches {
			if rule.matches[k].excluded == "" {
				rule.never = false
			}
		}
	}
	rule.prefilter()
	return rule, nil
}

// prefilter collects the literal uri prefix of each applicable block; a block without one
// (no uri, ignoreUriCase, a regex with no literal start) means every path must be tried.
func (r *httpRule) prefilter() {
	if len(r.matches) == 0 {
		return
	}
	var out []string
	for i := range r.matches {
		m := &r.matches[i]
		if m.excluded != "" {
			continue
		}
		u := m.uri
		if u == nil || u.fold {
			return
		}
		switch {
		case u.kind == matchExact || u.kind == matchPrefix:
			out = append(out, u.s)
		case u.kind == matchRegex && u.lit != "":
			out = append(out, u.lit)
		default:
			return
		}
	}
	r.uriPrefixes, r.prefiltered = out, true
}

// pathMayMatch reports whether path starts with one of the rule's literal prefixes.
func (r *httpRule) pathMayMatch(path []byte) bool {
	for _, p := range r.uriPrefixes {
		if len(path) >= len(p) && string(path[:len(p)]) == p {
			return true
		}
	}
	return false
}
