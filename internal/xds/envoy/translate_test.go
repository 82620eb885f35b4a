package envoy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/explain"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/testutil/casefile"
)

const (
	examplesDir   = "../../../../../shared/spec/examples"
	istioCasesDir = "../../explain/testdata/istio-cases"
)

func exampleFiles(t *testing.T) []string {
	t.Helper()
	dir := examplesDir
	if _, err := os.Stat(dir); err != nil {
		dir = "/work/shared/spec/examples"
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Skipf("reference examples not found in %s", dir)
	}
	return files
}

func snapshotOf(t *testing.T, path string) *registry.Snapshot {
	t.Helper()
	loaded, err := config.Load([]string{path}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Invalid documents (example 07 has some on purpose) are left out, as run leaves them out.
	return compile.Documents(loaded, 1).Snapshot
}

// requestsFor lists one request per visible service port, in the form its protocol arrives in.
func requestsFor(snap *registry.Snapshot, ns string) []walkReq {
	var out []walkReq
	for _, svc := range snap.Services {
		if !svc.VisibleTo(ns) || svc.Wildcard {
			continue
		}
		for _, p := range svc.Ports {
			r := walkReq{host: svc.Host, port: p.Number}
			if len(svc.Addresses) > 0 {
				r.ip = svc.Addresses[0].Addr()
			}
			switch p.Family {
			case registry.FamilyHTTP, registry.FamilyAuto:
				r.kind = "http"
			case registry.FamilyTLS:
				r.kind = "tls"
			case registry.FamilyTCP:
				if !r.ip.IsValid() {
					continue // without a VIP the registry matches TCP by port only, like Istio's 0.0.0.0_PORT
				}
				r.kind = "tcp"
			default:
				continue
			}
			out = append(out, r)
		}
	}
	return out
}

func explained(snap *registry.Snapshot, ns string, imp func(string, string) bool, r walkReq) string {
	req := explain.Request{Namespace: ns, Host: r.host, Port: r.port, AllowAny: true, Import: imp, IP: r.ip}
	switch r.kind {
	case "http":
		req.Protocol = registry.TrafficHTTP
	case "tls":
		req.Protocol = registry.TrafficTLS
	default:
		req.Protocol, req.Host = registry.TrafficTCP, ""
	}
	return explain.Explain(snap, req).Cluster
}

// TestWalkReachesExplainedCluster walks the generated config as Envoy would for every service
// port of every reference example and must reach the cluster explain names.
func TestWalkReachesExplainedCluster(t *testing.T) {
	t.Parallel()
	for _, file := range exampleFiles(t) {
		t.Run(filepath.Base(file)+" routes every service port to the cluster explain names", func(t *testing.T) {
			t.Parallel()
			snap := snapshotOf(t, file)
			for _, ns := range []string{"default", "egress", "istio-system"} {
				res, err := NewShared(snap, Options{AllowAny: true}).Build(Node{ID: "sidecar~10.0.0.9~app." + ns + "~" + ns + ".svc.cluster.local", Namespace: ns})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range requestsFor(snap, ns) {
					got, want := walk(res, r), explained(snap, ns, nil, r)
					if got != want {
						t.Errorf("namespace %s, %s %s %s:%d: walk reaches %q, explain names %q", ns, r.kind, r.host, r.ip, r.port, got, want)
					}
				}
			}
		})
	}
}

// TestWalkAgreesOnIstioCases walks the Istio simulation cases' requests.
func TestWalkAgreesOnIstioCases(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(istioCasesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in %s", istioCasesDir)
	}
	for _, file := range files {
		ns, route, reqs := readCase(t, file)
		t.Run(filepath.Base(file)+" reaches the cluster explain names", func(t *testing.T) {
			t.Parallel()
			snap := snapshotOf(t, file)
			var imp func(string, string) bool // the node's Sidecar decides, in the translation as in explain
			res, err := NewShared(snap, Options{AllowAny: true}).BuildScoped(Node{ID: "sidecar~10.0.0.9~app." + ns + "~" + ns, Namespace: ns}, imp)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range reqs {
				if r.port == 0 {
					r.port = route
				}
				got, want := walk(res, r), explained(snap, ns, imp, r)
				if got != want {
					t.Errorf("%s %s %s:%d: walk reaches %q, explain names %q", r.kind, r.host, r.ip, r.port, got, want)
				}
			}
		})
	}
}

// readCase reads the header of an Istio case: proxy namespace, route port and its requests.
func readCase(t *testing.T, path string) (string, uint32, []walkReq) {
	t.Helper()
	var ns string
	var port uint32
	var reqs []walkReq
	for _, h := range casefile.Header(t, path) {
		key, value := h.Key, h.Value
		fs := strings.Fields(value)
		switch {
		case key == "proxy":
			ns = strings.TrimPrefix(value, "namespace ")
		case key == "route":
			p, _ := strconv.Atoi(value)
			port = uint32(p)
		case key == "istio" && len(fs) == 3 && fs[0] == "http":
			reqs = append(reqs, walkReq{kind: "http", host: strings.Replace(fs[1], "*", "any-label", 1)})
		case key == "istio" && len(fs) == 5 && fs[0] == "tls":
			p, _ := strconv.Atoi(fs[3])
			reqs = append(reqs, walkReq{kind: "tls", host: fs[1], ip: netip.MustParseAddr(fs[2]), port: uint32(p)})
		}
	}
	return ns, port, reqs
}
