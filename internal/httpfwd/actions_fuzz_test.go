package httpfwd

import (
	"regexp"
	"strings"
	"testing"
)

// FuzzRouteRewrites feeds arbitrary request targets and rewrite values through the parts of
// the route actions that build strings from what a client sent: the rewritten path, the
// redirect's Location, the mirror's shadow Host and Envoy-style substitutions. None may panic,
// and a rewritten path keeps the query it was given.
func FuzzRouteRewrites(f *testing.F) {
	f.Add("/v1/items?id=3", "/v1", "/v2", `\1x`, "svc:8080")
	f.Add("/", "", "/health", `$`, "[::1]:80")
	f.Add("/a?b?c", "/A", "", `\\\9`, ":")
	re := regexp.MustCompile(`^/([^/]*)(.*)$`)
	f.Fuzz(func(t *testing.T, target, prefix, uri, subst, authority string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		c := conn{work: &work{}}
		c.req.Target = []byte(target)
		c.rewritePath(&Rewrite{Prefix: prefix, URI: "/" + uri})
		if i := strings.IndexByte(target, '?'); i >= 0 && !strings.HasSuffix(string(c.rt.path), target[i:]) {
			t.Fatalf("rewriting %q lost its query: %q", target, c.rt.path)
		}
		c.rewritePath(&Rewrite{Regex: re, RegexReplace: RegexSubstitution(subst)})
		_ = shadowHost(authority)
		req := &RequestHead{Target: []byte(target), Host: authority, Port: len(authority)}
		_ = redirectLocation(req, &Redirect{URI: uri, Host: authority, Scheme: prefix})
	})
}
