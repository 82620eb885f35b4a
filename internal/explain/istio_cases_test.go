package explain

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/testutil/casefile"
)

// istioCasesDir holds Istio's routing simulation cases that involve VirtualServices (and
// Sidecars), one per file: the documents, headed by comments naming the case, its source, the
// proxy's namespace, the route (listener port) and Istio's expectations, "# istio:" lines. Where
// meshentry differs on purpose a "# want:" line gives its answer and "# differs:" says why.
// "# needs: sidecar" marks cases whose answer depends on Sidecar scoping: their proxy gets
// route.Proxy.Import from sidecarImport below, a stand-in for the Sidecar work's own reading.
const istioCasesDir = "testdata/istio-cases"

// routeExpect is one expectation: an http virtual host domain on the case's route, or a tls
// connection, and the cluster ("-": no virtual host of exactly that domain).
type routeExpect struct {
	line, kind, host, ip string
	port                 uint32
	cluster              string
}

type routeCase struct {
	name, namespace, needs, differs string // needs is documentation only
	route                           uint32
	expects                         []routeExpect
	wants                           map[string]string // by the expectation's request, our answer where it differs
}

func parseExpect(t *testing.T, c *routeCase, value string) routeExpect {
	t.Helper()
	f := strings.Fields(value)
	e := routeExpect{line: value, kind: f[0]}
	switch {
	case e.kind == "http" && len(f) == 3:
		e.host, e.port, e.cluster = f[1], c.route, f[2]
	case e.kind == "tls" && len(f) == 5:
		p, err := strconv.ParseUint(f[3], 10, 16)
		if err != nil {
			t.Fatalf("bad port in %q", value)
		}
		e.host, e.ip, e.port, e.cluster = f[1], f[2], uint32(p), f[4]
	default:
		t.Fatalf("expectation %q is not \"http DOMAIN CLUSTER\" or \"tls SNI IP PORT CLUSTER\"", value)
	}
	return e
}

func (e routeExpect) request() string {
	return strings.Join([]string{e.kind, e.host, e.ip, strconv.Itoa(int(e.port))}, " ")
}

func readRouteCase(t *testing.T, path string) routeCase {
	t.Helper()
	c := routeCase{wants: map[string]string{}}
	for _, h := range casefile.Header(t, path) {
		value := h.Value
		switch h.Key {
		case "case":
			c.name = value
		case "proxy":
			c.namespace = strings.TrimPrefix(value, "namespace ")
		case "route":
			p, err := strconv.ParseUint(value, 10, 16)
			if err != nil {
				t.Fatalf("%s: bad route %q", path, value)
			}
			c.route = uint32(p)
		case "needs":
			c.needs = value
		case "differs":
			c.differs = value
		case "istio":
			c.expects = append(c.expects, parseExpect(t, &c, value))
		case "want":
			w := parseExpect(t, &c, value)
			c.wants[w.request()] = w.cluster
		}
	}
	if c.name == "" || c.namespace == "" || len(c.expects) == 0 {
		t.Fatalf("%s: header needs # case:, # proxy: and # istio: lines", path)
	}
	if (len(c.wants) > 0) != (c.differs != "") {
		t.Fatalf("%s: a # want: that differs from Istio needs a # differs: line, and only then", path)
	}
	return c
}

// caseSnapshot compiles a case file as meshentry loads configuration: validated, analysed, built.
func caseSnapshot(t *testing.T, path string) *registry.Snapshot {
	t.Helper()
	loaded, err := config.Load([]string{path}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := compile.Documents(loaded, 1)
	if n := res.Errors(); n > 0 {
		t.Fatalf("%s: %d documents do not validate: %v", path, n, res.Diagnostics)
	}
	return res.Snapshot
}

// TestIstioRouteCases holds explain to Istio's answer for each case. An http expectation names an
// Envoy virtual host domain; a request for it ("*." replaced by a label) must get its cluster, and
// "-" means no virtual host of exactly that domain takes the request.
func TestIstioRouteCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(istioCasesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in %s: %v", istioCasesDir, err)
	}
	for _, file := range files {
		c := readRouteCase(t, file)
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			snap := caseSnapshot(t, file)
			imp := sidecarImport(snap, c.namespace)
			var failures []string
			for _, e := range c.expects {
				want := e.cluster
				if w, ok := c.wants[e.request()]; ok {
					want = w
				}
				if f := checkExpect(snap, c.namespace, imp, e, want); f != "" {
					failures = append(failures, f)
				}
			}
			if len(failures) > 0 {
				t.Error(strings.Join(failures, "\n"))
			}
		})
	}
}

// checkExpect explains the expectation's request and says how the answer differs, "" if not.
func checkExpect(snap *registry.Snapshot, ns string, imp func(string, string) bool, e routeExpect, want string) string {
	req := Request{Namespace: ns, Host: strings.Replace(e.host, "*", "any-label", 1), Port: e.port, AllowAny: true,
		Protocol: registry.TrafficHTTP, Import: imp}
	if e.kind == "tls" {
		req.Protocol, req.IP = registry.TrafficTLS, netip.MustParseAddr(e.ip)
	}
	rep := Explain(snap, req)
	if want == "-" {
		if rep.Route != nil && rep.Route.Host == e.host {
			return fmt.Sprintf("%s: a virtual host for %s took the request (%s), want none", e.line, e.host, rep.Cluster)
		}
		return ""
	}
	if rep.Cluster != want {
		return fmt.Sprintf("%s: cluster %q, want %q (%s)", e.line, rep.Cluster, want, rep.Reason)
	}
	return ""
}

// sidecarImport reads the namespace's default Sidecar (no workloadSelector) into an import filter
// for routing, with Istio's egress host forms: "ns/host", "*/host", "./host" and "~/host".
// Narrowing the registry's own matches is the Sidecar work's, so only routing is narrowed here.
// Import is called with VirtualService hosts as well as service hosts, so the match is by overlap.
func sidecarImport(snap *registry.Snapshot, ns string) func(string, string) bool {
	var entries []string
	for _, d := range snap.Documents {
		if sc := d.Sidecar(); sc != nil && d.Namespace == ns && sc.WorkloadSelector == nil {
			for _, eg := range sc.Egress {
				entries = append(entries, eg.Hosts...)
			}
		}
	}
	if entries == nil {
		return nil
	}
	return func(namespace, host string) bool {
		for _, e := range entries {
			ens, pattern, _ := strings.Cut(e, "/")
			if ens == "." {
				ens = ns
			}
			if ens != "*" && ens != namespace {
				continue
			}
			// Istio selects by overlap: a wildcard VirtualService host is imported by an egress host
			// it covers, as well as the other way round.
			if covers(pattern, host) || covers(host, pattern) {
				return true
			}
		}
		return false
	}
}

// covers reports whether host pattern p ("*", "*.suffix" or a name) includes h.
func covers(p, h string) bool {
	return p == "*" || p == h || (strings.HasPrefix(p, "*.") && strings.HasSuffix(h, p[1:]))
}
