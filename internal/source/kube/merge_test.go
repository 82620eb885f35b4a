package kube

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
)

// fileResult compiles one ServiceEntry for host from a real file, as the file source would.
func fileResult(t *testing.T, host string, version uint64) *compile.Result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "se.yaml")
	doc := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: file}\nspec:\n  hosts: [" + host +
		"]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 10.1.0.1}]\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := compile.Paths([]string{path}, config.Options{Namespace: "default"}, version)
	if err != nil || res.Errors() > 0 {
		t.Fatalf("compile: %v %v", err, res.Diagnostics)
	}
	return res
}

func TestMerger(t *testing.T) {
	t.Parallel()
	kubeDocs := func(t *testing.T) []*config.Document {
		t.Helper()
		o, _ := objectOf(serviceEntry("ns", "k", "kube.example.com", "10.0.0.9"))
		return []*config.Document{o.document()}
	}
	t.Run("files and cluster objects make one snapshot, either side changing", func(t *testing.T) {
		t.Parallel()
		m := NewMerger(fileResult(t, "file.example.com", 1))
		var published []*compile.Result
		m.SetPublish(func(r *compile.Result) { published = append(published, r) })
		r := m.Kube(kubeDocs(t))
		if !hasHost(r, "file.example.com") || !hasHost(r, "kube.example.com") {
			t.Fatalf("hosts = %v, want both", hosts(r))
		}
		r = m.Files(fileResult(t, "other.example.com", 2))
		if hasHost(r, "file.example.com") || !hasHost(r, "other.example.com") || !hasHost(r, "kube.example.com") {
			t.Fatalf("after the file changed hosts = %v, want other and kube", hosts(r))
		}
		if len(published) != 2 || published[1].Snapshot.Version <= published[0].Snapshot.Version {
			t.Fatalf("published %d results, want 2 in rising versions", len(published))
		}
	})
	t.Run("cluster objects are compiled with the run's options, as files are", func(t *testing.T) {
		t.Parallel()
		se := serviceEntry("ns", "db", "db.example.com", "10.0.0.9")
		se.Spec.Ports[0].Protocol, se.Spec.Ports[0].Name = "TCP", "tcp"
		o, _ := objectOf(se)
		vip := netip.MustParseAddr("240.240.0.9")
		alloc := compile.WithAutoAddresses(func(hosts []string, _ []netip.Prefix) map[string][]netip.Addr {
			out := map[string][]netip.Addr{}
			for _, h := range hosts {
				out[h] = []netip.Addr{vip}
			}
			return out
		})
		r := NewMerger(nil, alloc).Kube([]*config.Document{o.document()})
		svc := r.Snapshot.LookupIP(vip, 80, "ns")
		if svc == nil || svc.Host != "db.example.com" || !svc.AutoAllocated {
			t.Fatalf("LookupIP(%s) = %v, want db.example.com with an allocated address", vip, svc)
		}
	})
	t.Run("without a file source the cluster's objects alone are served", func(t *testing.T) {
		t.Parallel()
		r := NewMerger(nil).Kube(kubeDocs(t))
		if got := hosts(r); len(got) != 1 || got[0] != "kube.example.com" {
			t.Fatalf("hosts = %v", got)
		}
	})
}
