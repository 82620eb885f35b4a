package envoy

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// editFolder is a config folder with one document per file, compiled through one
// compile.Cache as run's reload compiles it, so that the registry reuses the services of every
// file not touched.
type editFolder struct {
	dir   string
	cache *compile.Cache
	docs  map[string]string // file name → YAML
	ver   uint64
}

func newEditFolder(t *testing.T) *editFolder {
	return &editFolder{dir: t.TempDir(), cache: compile.NewCache(), docs: map[string]string{}}
}

func (f *editFolder) put(t *testing.T, name, yaml string) {
	t.Helper()
	f.docs[name] = yaml
	if err := os.WriteFile(filepath.Join(f.dir, name+".yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *editFolder) remove(t *testing.T, name string) {
	t.Helper()
	delete(f.docs, name)
	if err := os.Remove(filepath.Join(f.dir, name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

func (f *editFolder) snapshot(t *testing.T) *registry.Snapshot {
	t.Helper()
	f.ver++
	res, err := f.cache.Paths([]string{f.dir}, config.Options{}, f.ver)
	if err != nil {
		t.Fatal(err)
	}
	return res.Snapshot
}

// randomDoc writes a random document of kind ("se", "dr", "vs", "sc") number i. The choices
// cover what the translation reads: resolutions, protocols, addresses, exportTo, endpoint
// labels and localities; DestinationRule policies and subsets; VirtualService HTTP, TLS and TCP
// routes with matches and weights; Sidecar egress hosts, selectors and outbound policy.
func randomDoc(r *rand.Rand, kind string, i int) string {
	pick := func(opts ...string) string { return opts[r.IntN(len(opts))] }
	host := func() string { return fmt.Sprintf("svc-%d.example.com", r.IntN(6)) }
	switch kind {
	case "se":
		ns := pick("default", "default", "other")
		res := pick("STATIC", "STATIC", "DNS", "NONE", "DNS_ROUND_ROBIN")
		hosts := fmt.Sprintf("[svc-%d.example.com]", i)
		if r.IntN(4) == 0 {
			hosts = fmt.Sprintf("[svc-%d.example.com, alt-%d.example.com]", i, i)
		}
		if res == "NONE" && r.IntN(3) == 0 {
			hosts = fmt.Sprintf("[\"*.wild-%d.example.com\"]", i)
		}
		ports := pick("[{number: 80, name: http, protocol: HTTP}]",
			"[{number: 80, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}]",
			"[{number: 443, name: tls, protocol: TLS}]",
			"[{number: 8080, name: grpc, protocol: GRPC}, {number: 80, name: http2, protocol: HTTP2}]",
			"[{number: 9000, name: tcp, protocol: TCP}]")
		var extra strings.Builder
		if r.IntN(3) == 0 {
			fmt.Fprintf(&extra, "  addresses: [240.0.%d.%d]\n", r.IntN(2), i%200+1)
		}
		if r.IntN(4) == 0 {
			fmt.Fprintf(&extra, "  exportTo: [%s]\n", pick(".", "\"*\"", "other"))
		}
		switch res {
		case "STATIC":
			fmt.Fprintf(&extra, "  endpoints:\n")
			for e := range 1 + r.IntN(3) {
				fmt.Fprintf(&extra, "  - {address: 10.1.%d.%d, labels: {version: %s}, locality: %s, weight: %d}\n",
					i, e+1, pick("v1", "v2"), pick("us/a", "us/b", "eu/a"), 1+r.IntN(3))
			}
		case "DNS", "DNS_ROUND_ROBIN":
			if r.IntN(2) == 0 {
				fmt.Fprintf(&extra, "  endpoints: [{address: e%d.example.net, labels: {version: v1}}]\n", i)
			}
		}
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-%d, namespace: %s}\nspec:\n  hosts: %s\n  location: %s\n  resolution: %s\n  ports: %s\n%s",
			i, ns, hosts, pick("MESH_INTERNAL", "MESH_EXTERNAL"), res, ports, extra.String())
	case "dr":
		tp := pick("{loadBalancer: {simple: LEAST_REQUEST}}",
			"{connectionPool: {tcp: {maxConnections: 7}}, outlierDetection: {consecutive5xxErrors: 3, interval: 5s}}",
			"{tls: {mode: SIMPLE, sni: x.example.com}}",
			"{loadBalancer: {consistentHash: {httpHeaderName: x-user}}}",
			"{portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}}]}")
		subsets := pick("", "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}]\n")
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr-%d, namespace: %s}\nspec:\n  host: %s\n  trafficPolicy: %s\n%s",
			i, pick("default", "other", "istio-system"), host(), tp, subsets)
	case "vs":
		h := host()
		var rules string
		switch r.IntN(3) {
		case 0:
			rules = fmt.Sprintf("  http:\n  - match: [{uri: {prefix: /a}, port: %s}]\n    route: [{destination: {host: %s, subset: v1}, weight: 30}, {destination: {host: %s}, weight: 70}]\n    timeout: 3s\n    fault: {abort: {httpStatus: 503, percentage: {value: %d}}}\n  - route: [{destination: {host: %s}}]\n    retries: {attempts: %d, retryOn: 5xx}\n    mirror: {host: %s}\n    corsPolicy: {allowOrigins: [{exact: \"https://%s\"}]}\n",
				pick("80", "8080"), host(), host(), r.IntN(100), h, 1+r.IntN(3), host(), host())
		case 1:
			rules = fmt.Sprintf("  tls:\n  - match: [{port: 443, sniHosts: [%s]}]\n    route: [{destination: {host: %s, port: {number: 443}}}]\n", h, host())
		default:
			rules = fmt.Sprintf("  tcp:\n  - match: [{port: 9000}]\n    route: [{destination: {host: %s, port: {number: 9000}}}]\n", host())
		}
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: vs-%d, namespace: %s}\nspec:\n  hosts: [%s]\n%s",
			i, pick("default", "default", "other"), h, rules)
	default:
		sel := pick("", "", "  workloadSelector: {labels: {app: x}}\n")
		egress := pick("[{hosts: [\"./*\"]}]", "[{hosts: [\"./svc-1.example.com\", \"other/*\"]}]",
			"[{port: {number: 80, protocol: HTTP, name: http}, hosts: [\"*/*\"]}, {hosts: [\"./svc-2.example.com\"]}]")
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc-%d, namespace: %s}\nspec:\n%s  egress: %s\n  outboundTrafficPolicy: {mode: %s}\n",
			i, pick("default", "istio-system"), sel, egress, pick("REGISTRY_ONLY", "ALLOW_ANY"))
	}
}

// diffNodes are the kinds of node the differential test builds for.
var diffNodes = []Node{
	{ID: "sidecar~10.0.0.1~a.default~default.svc.cluster.local", Namespace: "default", Labels: map[string]string{}},
	{ID: "sidecar~10.0.0.2~b.default~default.svc.cluster.local", Namespace: "default", Labels: map[string]string{"app": "x"}, Locality: "us/a"},
	{ID: "sidecar~10.0.0.3~c.other~other.svc.cluster.local", Namespace: "other", Labels: map[string]string{}},
	{ID: "grpc-client", Namespace: "default", Labels: map[string]string{}, Generator: "grpc", Locality: "us/b"},
}

// TestIncrementalBuildEqualsFreshBuild holds the incremental translation to the fresh one over
// random edits of ServiceEntries, DestinationRules, VirtualServices and Sidecars: after each
// edit, every kind of node gets from NewSharedFrom(last, ...) exactly what NewShared gives it.
func TestIncrementalBuildEqualsFreshBuild(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		seed  uint64
		steps int
		opts  Options
	}{
		{name: "random edits under REGISTRY_ONLY give what a fresh build gives", seed: 1, steps: 50},
		{name: "random edits under ALLOW_ANY give what a fresh build gives", seed: 2, steps: 50, opts: Options{AllowAny: true}},
		{name: "another sequence of edits gives what a fresh build gives", seed: 3, steps: 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			steps := tc.steps
			if raceEnabled {
				steps /= 5
			}
			r := rand.New(rand.NewPCG(tc.seed, 99))
			f := newEditFolder(t)
			kinds := []string{"se", "se", "se", "dr", "vs", "sc"}
			for i := range 8 {
				f.put(t, fmt.Sprintf("se-%d", i), randomDoc(r, "se", i))
			}
			var prev *Shared
			prevBuilt := map[string]Resources{}
			reused := 0
			for step := range steps {
				if step > 0 {
					edit(t, r, f, kinds[r.IntN(len(kinds))])
				}
				snap := f.snapshot(t)
				inc := NewSharedFrom(prev, snap, tc.opts)
				fresh := NewShared(snap, tc.opts)
				for _, n := range diffNodes {
					got, gerr := inc.Build(n)
					want, werr := fresh.Build(n)
					if (gerr != nil) != (werr != nil) {
						t.Fatalf("step %d, node %s: incremental error %v, fresh error %v", step, n.ID, gerr, werr)
					}
					// proto.Equal first: cmp.Diff of every step took seconds, and it is only
					// needed to show a difference.
					if !sameResources(want, got) {
						t.Fatalf("step %d, node %s: incremental build differs from a fresh one (-fresh +incremental):\n%s\nfolder:\n%s",
							step, n.ID, cmp.Diff(want, got, protocmp.Transform()), f.dump())
					}
					if prev != nil {
						reused += countShared(got, prevBuilt[n.ID])
					}
					prevBuilt[n.ID] = got
				}
				prev = inc
				if step%5 == 4 {
					// Nothing changed: every resource must be the very message of the last Build.
					again := NewSharedFrom(prev, snap, tc.opts)
					for _, n := range diffNodes {
						got, err := again.Build(n)
						if err != nil {
							continue // refused both times, as checked above
						}
						if shared, total := countShared(got, prevBuilt[n.ID]), countShared(got, got); shared != total {
							t.Fatalf("step %d, node %s: rebuilding an unchanged snapshot reused %d of %d resources", step, n.ID, shared, total)
						}
					}
					prev = again
				}
			}
			if reused == 0 {
				t.Error("no resource was reused across the edits: the incremental path never ran")
			}
		})
	}
}

// sameResources reports whether a and b hold equal resources in the same order.
func sameResources(a, b Resources) bool {
	if len(a) != len(b) {
		return false
	}
	for typ, la := range a {
		lb, ok := b[typ]
		if !ok || len(la) != len(lb) {
			return false
		}
		for i := range la {
			if la[i] != lb[i] && !proto.Equal(la[i], lb[i]) {
				return false
			}
		}
	}
	return true
}

// edit adds, changes or removes one document of kind in f.
func edit(t *testing.T, r *rand.Rand, f *editFolder, kind string) {
	t.Helper()
	var have []string
	for name := range f.docs {
		if strings.HasPrefix(name, kind+"-") {
			have = append(have, name)
		}
	}
	sort.Strings(have)
	switch op := r.IntN(3); {
	case op == 0 && len(have) > 0:
		f.remove(t, have[r.IntN(len(have))])
	case op == 1 && len(have) > 0:
		name := have[r.IntN(len(have))]
		var i int
		fmt.Sscanf(strings.TrimPrefix(name, kind+"-"), "%d", &i)
		f.put(t, name, randomDoc(r, kind, i))
	default:
		i := r.IntN(12)
		f.put(t, fmt.Sprintf("%s-%d", kind, i), randomDoc(r, kind, i))
	}
}

func (f *editFolder) dump() string {
	names := make([]string, 0, len(f.docs))
	for n := range f.docs {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "--- %s\n%s", n, f.docs[n])
	}
	return b.String()
}

// countShared counts the resources of got that are the very messages of before.
func countShared(got, before Resources) int {
	old := map[types.Resource]bool{}
	for _, list := range before {
		for _, r := range list {
			old[r] = true
		}
	}
	n := 0
	for _, list := range got {
		for _, r := range list {
			if old[r] {
				n++
			}
		}
	}
	return n
}

// byNameIn finds the resource of typ named name in res.
func byNameIn(res Resources, typ, name string) types.Resource {
	for _, r := range res[typ] {
		if nameOf(r) == name {
			return r
		}
	}
	return nil
}

// TestIncrementalBuildKeepsUnchangedMessages holds the contract with the encoding cache of the
// server: after one ServiceEntry's endpoints change, the resources of the others, and those of
// the changed one that do not name endpoints, are the same messages as in the last Build for the
// same kind of node; its load assignment is new.
func TestIncrementalBuildKeepsUnchangedMessages(t *testing.T) {
	t.Parallel()
	f := newEditFolder(t)
	se := func(i, last int) string {
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-%d, namespace: default}\nspec:\n  hosts: [svc-%d.example.com]\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.0.%d.%d}]\n", i, i, i, last)
	}
	for i := range 3 {
		f.put(t, fmt.Sprintf("se-%d", i), se(i, 1))
	}
	n := diffNodes[0]
	first := NewShared(f.snapshot(t), Options{})
	before, err := first.Build(n)
	if err != nil {
		t.Fatal(err)
	}
	f.put(t, "se-1", se(1, 2))
	after, err := NewSharedFrom(first, f.snapshot(t), Options{}).Build(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		typ  string
		res  string
		same bool
	}{
		{name: "an unchanged service keeps its cluster", typ: resource.ClusterType, res: "outbound|80||svc-0.example.com", same: true},
		{name: "an unchanged service keeps its load assignment", typ: resource.EndpointType, res: "outbound|80||svc-2.example.com", same: true},
		{name: "the changed service gets a new load assignment", typ: resource.EndpointType, res: "outbound|80||svc-1.example.com"},
		{name: "the changed service keeps its cluster, which names no endpoint", typ: resource.ClusterType, res: "outbound|80||svc-1.example.com", same: true},
		{name: "the catch-all clusters are kept", typ: resource.ClusterType, res: BlackHole, same: true},
		{name: "the virtual outbound listener is kept", typ: resource.ListenerType, res: VirtualOutbound, same: true},
		{name: "the port listener, whose chains did not change, is kept", typ: resource.ListenerType, res: "0.0.0.0_80", same: true},
		{name: "the route table of the port is kept, its hosts naming clusters by name", typ: resource.RouteType, res: "80", same: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, a := byNameIn(before, tc.typ, tc.res), byNameIn(after, tc.typ, tc.res)
			if a == nil || b == nil {
				t.Fatalf("%s %s missing (before %v, after %v)", tc.typ, tc.res, b != nil, a != nil)
			}
			if (a == b) != tc.same {
				t.Errorf("same message: got %v, want %v", a == b, tc.same)
			}
		})
	}
}

// TestIncrementalAcrossGenerations covers the reference a Build takes when it is not simply the
// last Shared's Build for the node: options changed between snapshots, or a kind of node that
// was not built for one snapshot.
func TestIncrementalAcrossGenerations(t *testing.T) {
	t.Parallel()
	f := newEditFolder(t)
	for i := range 3 {
		f.put(t, fmt.Sprintf("se-%d", i), randomDoc(rand.New(rand.NewPCG(uint64(i), 7)), "se", i))
	}
	snap := f.snapshot(t)
	n := diffNodes[0]
	first := NewShared(snap, Options{})
	before, err := first.Build(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("changed options reuse nothing and give what a fresh build gives", func(t *testing.T) {
		opts := Options{AllowAny: true}
		got, err := NewSharedFrom(first, snap, opts).Build(n)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := NewShared(snap, opts).Build(n)
		if !sameResources(want, got) {
			t.Fatalf("differs from a fresh build:\n%s", cmp.Diff(want, got, protocmp.Transform()))
		}
		if shared := countShared(got, before); shared != 0 {
			t.Errorf("%d resources reused across an options change", shared)
		}
	})
	t.Run("a kind of node skipped for one snapshot still reuses its last build", func(t *testing.T) {
		skipped := NewSharedFrom(first, snap, Options{}) // no Build for n
		got, err := NewSharedFrom(skipped, snap, Options{}).Build(n)
		if err != nil {
			t.Fatal(err)
		}
		if !sameResources(before, got) {
			t.Fatalf("differs from the last build:\n%s", cmp.Diff(before, got, protocmp.Transform()))
		}
		if shared, total := countShared(got, before), countShared(got, got); shared != total {
			t.Errorf("%d of %d resources reused, want all", shared, total)
		}
	})
}
