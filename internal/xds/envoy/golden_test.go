package envoy

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
)

var update = flag.Bool("update", false, "rewrite the golden config dumps")

// TestGoldenConfigDumps holds the sidecar config of each reference example to its golden
// config_dump (testdata/golden/NAME.json), compared as protos, not as text.
func TestGoldenConfigDumps(t *testing.T) {
	t.Parallel()
	for _, file := range exampleFiles(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name+" matches its golden config dump", func(t *testing.T) {
			t.Parallel()
			snap := snapshotOf(t, file)
			res, err := NewShared(snap, Options{AllowAny: true}).Build(Node{ID: "sidecar~10.0.0.9~app.default~default.svc.cluster.local", Namespace: "default"})
			if err != nil {
				t.Fatal(err)
			}
			got := ConfigDump(res, "1")
			path := filepath.Join("testdata", "golden", name+".json")
			if *update {
				b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(got)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to write it)", err)
			}
			want := &adminv3.ConfigDump{}
			if err := protojson.Unmarshal(b, want); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("config dump differs from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}
