package route

import (
	"fmt"

	"github.com/meshentry/meshentry/internal/config"
)

// Trace is how a request met a VirtualService, for explain.
type Trace struct {
	// VirtualService is "ns/name" of the VirtualService that binds the host ("" when none does);
	// Doc is its document; Domain is the host entry that took the request.
	VirtualService string
	Doc            *config.Document
	Domain         string
	Gateway        string
	// Rules are the rules tried, in order, up to and including the one that matched.
	Rules []RuleTrace
	// Route is what HTTP returns for the same request.
	Route *HTTPRoute
}

// RuleTrace is one rule tried.
type RuleTrace struct {
	VirtualService string
	Index          int
	Name           string
	Matched        bool
	// Reason says why the rule did not match (each block's first failing field), or which block did.
	Reason string
}

// ExplainHTTP does what HTTP does and says why: which rule matched and why each earlier one did not.
func (t *Table) ExplainHTTP(req *Request) Trace {
	tr := Trace{Gateway: req.Gateway}
	if tr.Gateway == "" {
		tr.Gateway = t.first
	}
	vh := t.vhost(req)
	if vh == nil {
		return tr
	}
	tr.VirtualService, tr.Doc, tr.Domain = vh.notFound.VirtualService, vh.notFound.Doc, vh.domain
	mc := &matchContext{req: req, src: t.sourceNamespace(req)}
	mc.path, mc.query = splitTarget(req.Path)
	for i := range vh.rules {
		vr := &vh.rules[i]
		rt := RuleTrace{VirtualService: vr.out.VirtualService, Index: vr.rule.index, Name: vr.rule.name}
		rt.Matched, rt.Reason = vr.rule.explain(mc)
		tr.Rules = append(tr.Rules, rt)
		if rt.Matched {
			tr.Route = vr.out
			return tr
		}
	}
	tr.Route = vh.notFound
	return tr
}

// explain says whether the rule takes the request and why.
func (r *httpRule) explain(mc *matchContext) (bool, string) {
	if len(r.matches) == 0 {
		return true, "the rule has no match: it takes every request"
	}
	reason := ""
	for i := range r.matches {
		m := &r.matches[i]
		var why string
		if m.excluded != "" {
			why = "does not apply to this proxy: " + m.excluded
		} else if field, name := m.holds(mc); field == "" {
			return true, fmt.Sprintf("match[%d] holds", i)
		} else {
			why = m.describeMiss(mc.req, field, name)
		}
		if reason != "" {
			reason += "; "
		}
		reason += fmt.Sprintf("match[%d] %s", i, why)
	}
	return false, reason
}

// describeMiss words a failing field with what was wanted and what the request had.
func (m *httpMatch) describeMiss(req *Request, field, name string) string {
	switch field {
	case "port":
		return fmt.Sprintf("wants port %d, the request is on %d", m.port, req.Port)
	case "sourceNamespace":
		return fmt.Sprintf("wants sourceNamespace %q", m.sourceNamespace)
	case "uri":
		return fmt.Sprintf("wants uri %s, the path is %q", m.uri, pathOnly(req.Path))
	case "scheme":
		return fmt.Sprintf("wants scheme %s, the request's is %q", m.scheme, req.Scheme)
	case "method":
		return fmt.Sprintf("wants method %s, the request's is %q", m.method, req.Method)
	case "authority":
		return fmt.Sprintf("wants authority %s, the request's is %q", m.authority, req.Authority)
	case "headers", "withoutHeaders":
		for i := range m.headers {
			if f := &m.headers[i]; f.name == name && f.invert == (field == "withoutHeaders") {
				return fmt.Sprintf("%s %s: wants %s", field, name, f.m.String())
			}
		}
	case "queryParams":
		for i := range m.query {
			if f := &m.query[i]; f.name == name {
				return fmt.Sprintf("queryParams %s: wants %s", name, f.m.String())
			}
		}
	}
	return field + " does not match"
}

func pathOnly(target []byte) string {
	p, _ := splitTarget(target)
	return string(p)
}
