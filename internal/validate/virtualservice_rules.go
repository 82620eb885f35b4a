package validate

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// maxRegexLen is Istio's stand-in for Envoy's RE2 program size limit.
const maxRegexLen = 1024

// retryConditions are the retryOn values Istio accepts: Envoy's HTTP and gRPC conditions.
var retryConditions = map[string]bool{
	"5xx": true, "gateway-error": true, "reset": true, "reset-before-request": true, "connect-failure": true,
	"envoy-ratelimited": true, "retriable-4xx": true, "refused-stream": true, "retriable-status-codes": true,
	"retriable-headers": true, "http3-post-connect-failure": true,
	"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true,
}

// virtualServiceRules checks what the route tables compile: regexes, weights, actions, retries,
// faults and the tls and tcp matches, as Istio's ValidateVirtualService does.
func virtualServiceRules(r *report, vs *networking.VirtualService) {
	for i, h := range vs.Http {
		if h == nil {
			continue
		}
		f := at("spec.http", i, "")
		for j, m := range h.Match {
			httpMatch(r, at(f+".match", j, ""), m)
		}
		httpActions(r, f, h)
		weights(r, f+".route", len(h.Route), func(k int) int32 { return h.Route[k].GetWeight() })
	}
	for i, t := range vs.Tls {
		if t == nil {
			continue
		}
		f := at("spec.tls", i, "")
		if len(t.Match) == 0 {
			r.errorf(CodeL4Match, f+".match", "a tls route needs at least one match (Istio builds no filter chain without one)")
		}
		for j, m := range t.Match {
			mf := at(f+".match", j, "")
			if len(m.GetSniHosts()) == 0 {
				r.errorf(CodeL4Match, mf+".sniHosts", "a tls match needs at least one sniHosts entry")
			}
			for k, s := range m.GetSniHosts() {
				if !sniInHosts(s, vs.Hosts) {
					r.errorf(CodeL4Match, at(mf+".sniHosts", k, ""), "SNI host %q is not covered by any of the VirtualService's hosts %v", s, vs.Hosts)
				}
			}
			subnets(r, mf+".destinationSubnets", m.GetDestinationSubnets())
		}
		weights(r, f+".route", len(t.Route), func(k int) int32 { return t.Route[k].GetWeight() })
	}
	for i, t := range vs.Tcp {
		if t == nil {
			continue
		}
		f := at("spec.tcp", i, "")
		for j, m := range t.Match {
			subnets(r, at(f+".match", j, ".destinationSubnets"), m.GetDestinationSubnets())
		}
		weights(r, f+".route", len(t.Route), func(k int) int32 { return t.Route[k].GetWeight() })
	}
	unreachableRules(r, vs)
}

// stringMatch checks one StringMatch: a regex must compile as RE2 (Envoy's engine, and Go's);
// an empty prefix is refused except on uri, as Envoy refuses it on headers.
func stringMatch(r *report, field string, m *networking.StringMatch, header bool) {
	switch v := m.GetMatchType().(type) {
	case *networking.StringMatch_Prefix:
		if v.Prefix == "" && header {
			r.errorf(CodeStringMatch, field+".prefix", "an empty prefix is not allowed here; leave the match empty to require only presence")
		}
	case *networking.StringMatch_Regex:
		if header && v.Regex == "*" {
			return // Istio's spelling of "present"
		}
		regex(r, field+".regex", v.Regex)
	}
}

// regex reports an expression that is empty, too long or not RE2.
func regex(r *report, field, re string) {
	switch {
	case re == "":
		r.errorf(CodeRegex, field, "a regex may not be empty")
	case len(re) > maxRegexLen:
		r.errorf(CodeRegex, field, "the regex is %d characters long; Istio allows at most %d", len(re), maxRegexLen)
	default:
		if _, err := regexp.Compile(re); err != nil {
			r.errorf(CodeRegex, field, "%v; Envoy matches RE2 expressions (https://github.com/google/re2/wiki/Syntax)", err)
		}
	}
}

func httpMatch(r *report, f string, m *networking.HTTPMatchRequest) {
	if m == nil {
		return
	}
	stringMatch(r, f+".uri", m.Uri, false)
	stringMatch(r, f+".scheme", m.Scheme, true)
	stringMatch(r, f+".method", m.Method, true)
	stringMatch(r, f+".authority", m.Authority, true)
	for _, k := range sortedKeys(m.Headers) {
		stringMatch(r, f+".headers."+k, m.Headers[k], true)
	}
	for _, k := range sortedKeys(m.WithoutHeaders) {
		stringMatch(r, f+".withoutHeaders."+k, m.WithoutHeaders[k], true)
	}
	for _, k := range sortedKeys(m.QueryParams) {
		stringMatch(r, f+".queryParams."+k, m.QueryParams[k], true)
	}
	if m.Port > 65535 {
		r.errorf(CodeStringMatch, f+".port", "port %d is out of range (1-65535)", m.Port)
	}
}

// httpActions checks a rule's actions fit together and are well formed.
func httpActions(r *report, f string, h *networking.HTTPRoute) {
	acts := 0
	for _, set := range []bool{len(h.Route) > 0, h.Redirect != nil, h.DirectResponse != nil} {
		if set {
			acts++
		}
	}
	switch {
	case h.Delegate != nil:
	case acts == 0:
		r.errorf(CodeRouteAction, f, "an http rule needs one of route, redirect or directResponse")
	case acts > 1:
		r.errorf(CodeRouteAction, f, "an http rule may have only one of route, redirect and directResponse")
	case h.Fault != nil && len(h.Route) == 0:
		r.errorf(CodeRouteAction, f+".fault", "fault injection needs a route; it cannot go with redirect or directResponse")
	case h.Rewrite != nil && len(h.Route) == 0:
		r.errorf(CodeRouteAction, f+".rewrite", "rewrite needs a route; it cannot go with redirect or directResponse")
	}
	if h.Mirror != nil && len(h.Mirrors) > 0 {
		r.errorf(CodeRouteAction, f+".mirrors", "mirror and mirrors cannot both be set")
	}
	if rr := h.GetRewrite().GetUriRegexRewrite(); rr != nil {
		regex(r, f+".rewrite.uriRegexRewrite.match", rr.Match)
		if h.Rewrite.Uri != "" {
			r.errorf(CodeRouteAction, f+".rewrite", "uri and uriRegexRewrite cannot both be set")
		}
	}
	for i, o := range h.GetCorsPolicy().GetAllowOrigins() {
		stringMatch(r, at(f+".corsPolicy.allowOrigins", i, ""), o, true)
	}
	if d := h.GetDirectResponse(); d != nil && (d.Status < 200 || d.Status > 599) {
		r.errorf(CodeRouteAction, f+".directResponse.status", "status %d is not between 200 and 599", d.Status)
	}
	timing(r, f, h)
}

// timing checks the retries, timeout, fault and mirror percentages.
func timing(r *report, f string, h *networking.HTTPRoute) {
	if h.Timeout != nil && h.Timeout.AsDuration() < 0 {
		r.errorf(CodeRetryTiming, f+".timeout", "timeout may not be negative")
	}
	if rt := h.Retries; rt != nil {
		if rt.Attempts < 0 {
			r.errorf(CodeRetryTiming, f+".retries.attempts", "attempts may not be negative")
		}
		if rt.PerTryTimeout != nil && rt.PerTryTimeout.AsDuration() <= 0 {
			r.errorf(CodeRetryTiming, f+".retries.perTryTimeout", "perTryTimeout must be positive")
		}
		for _, c := range strings.Split(rt.RetryOn, ",") {
			c = strings.TrimSpace(c)
			if n, err := strconv.Atoi(c); c == "" || retryConditions[c] || (err == nil && n >= 100 && n <= 599) {
				continue
			}
			r.errorf(CodeRetryTiming, f+".retries.retryOn", "%q is not an Envoy retry condition (5xx, gateway-error, connect-failure, reset, retriable-4xx, refused-stream, retriable-status-codes, ...) or an HTTP status", c)
		}
	}
	pct := func(field string, v float64) {
		if v < 0 || v > 100 {
			r.errorf(CodeRetryTiming, field, "percentage %v is not between 0 and 100", v)
		}
	}
	if d := h.GetFault().GetDelay(); d != nil {
		pct(f+".fault.delay.percentage.value", d.GetPercentage().GetValue())
	}
	if a := h.GetFault().GetAbort(); a != nil {
		pct(f+".fault.abort.percentage.value", a.GetPercentage().GetValue())
		if s := a.GetHttpStatus(); s != 0 && (s < 200 || s > 599) {
			r.errorf(CodeRetryTiming, f+".fault.abort.httpStatus", "status %d is not between 200 and 599", s)
		}
	}
	if h.MirrorPercentage != nil {
		pct(f+".mirrorPercentage.value", h.MirrorPercentage.Value)
	}
}

// weights applies Istio's rules (no negative weight; several destinations may not all weigh 0)
// and warns when several weights do not add up to 100: Envoy then splits in proportion, which
// is rarely what was meant.
func weights(r *report, f string, n int, weight func(int) int32) {
	var total int64 // int32 weights overflow an int32 sum
	for k := 0; k < n; k++ {
		w := weight(k)
		if w < 0 {
			r.errorf(CodeWeight, at(f, k, ".weight"), "weight %d is negative", w)
		}
		total += int64(w)
	}
	switch {
	case total > math.MaxUint32:
		r.errorf(CodeWeight, f, "the weights add up to %d, over the %d Envoy accepts", total, uint32(math.MaxUint32))
	case n > 1 && total == 0:
		r.errorf(CodeWeight, f, "the weights of the %d destinations add up to 0, so none gets traffic", n)
	case n > 1 && total != 100:
		r.warnf(CodeWeightSum, f, "the weights add up to %d, not 100: traffic is split in proportion (each share is weight/%d)", total, total)
	}
}

func subnets(r *report, f string, in []string) {
	for i, s := range in {
		var err error
		if strings.Contains(s, "/") {
			_, err = netip.ParsePrefix(s)
		} else {
			_, err = netip.ParseAddr(s)
		}
		if err != nil {
			r.errorf(CodeL4Match, at(f, i, ""), "%q is not an IP or CIDR", s)
		}
	}
}

// sniInHosts reports whether one of a VirtualService's hosts covers an SNI host, as Istio requires.
func sniInHosts(sni string, hosts []string) bool {
	for _, h := range hosts {
		if h == "*" || hostsOverlap(h, sni) {
			return true
		}
	}
	return false
}

// unreachableRules ports Istio's analyzeUnreachable*Rules: a rule after one without matches, or
// whose matches all repeat earlier ones, is never used (IST0130); a match that repeats an earlier
// one, or that an earlier uri-prefix-only match covers, is ineffective (IST0131).
func unreachableRules(r *report, vs *networking.VirtualService) {
	httpMatches := make([][]proto.Message, len(vs.Http))
	for i, h := range vs.Http {
		for _, m := range h.GetMatch() {
			c := proto.Clone(m).(*networking.HTTPMatchRequest)
			c.Name = ""
			httpMatches[i] = append(httpMatches[i], c)
		}
	}
	unreachable(r, "spec.http", httpMatches)
	coveredPrefixes(r, vs.Http)
	tls := make([][]proto.Message, len(vs.Tls))
	for i, t := range vs.Tls {
		for _, m := range t.GetMatch() {
			tls[i] = append(tls[i], m)
		}
	}
	unreachable(r, "spec.tls", tls)
	tcp := make([][]proto.Message, len(vs.Tcp))
	for i, t := range vs.Tcp {
		for _, m := range t.GetMatch() {
			tcp[i] = append(tcp[i], m)
		}
	}
	unreachable(r, "spec.tcp", tcp)
}

func unreachable(r *report, list string, rules [][]proto.Message) {
	seen := map[string]int{}
	catchAll := -1
	for i, ms := range rules {
		f := at(list, i, "")
		if catchAll >= 0 {
			r.warnf(CodeUnreachableRule, f, "this rule is never used: %s takes every request before it", at(list, catchAll, ""))
			continue
		}
		if len(ms) == 0 {
			catchAll = i
			continue
		}
		dups := 0
		for j, m := range ms {
			key := matchKey(m)
			if k, ok := seen[key]; ok {
				r.infof(CodeIneffectiveMatch, at(f+".match", j, ""), "this match repeats one of %s, which takes its requests first", at(list, k, ""))
				dups++
				continue
			}
			seen[key] = i
		}
		if dups == len(ms) {
			r.warnf(CodeUnreachableRule, f, "this rule is never used: every one of its matches repeats an earlier rule's")
		}
	}
}

// matchKey serializes a match for comparison, as Istio's asJSON does.
func matchKey(m proto.Message) string {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprintf("%p", m)
	}
	return string(b)
}

// coveredPrefixes reports a match whose uri an earlier match with nothing but a uri prefix covers.
func coveredPrefixes(r *report, rules []*networking.HTTPRoute) {
	type prefix struct {
		rule int
		p    string
	}
	var earlier []prefix
	for i, h := range rules {
		for j, m := range h.GetMatch() {
			uri := m.GetUri()
			path := uri.GetPrefix() + uri.GetExact()
			for _, e := range earlier {
				if path != "" && e.p != path && strings.HasPrefix(path, e.p) && !m.IgnoreUriCase {
					r.infof(CodeIneffectiveMatch, at(at("spec.http", i, ".match"), j, ""),
						"this match is not used: %s matches every uri with prefix %q first", at("spec.http", e.rule, ""), e.p)
					break
				}
			}
			c := proto.Clone(m).(*networking.HTTPMatchRequest)
			c.Name, c.Uri = "", nil
			if p := uri.GetPrefix(); p != "" && proto.Equal(c, &networking.HTTPMatchRequest{}) {
				earlier = append(earlier, prefix{rule: i, p: p})
			}
		}
	}
}
