package compile

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

func TestPathsLeavesInvalidDocumentsOutOfTheSnapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: good}
spec:
  hosts: [good.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad-port}
spec:
  hosts: [bad.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {https: 8443}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bad-field}
spec:
  hostz: [worse.example.com]
`), 0o644)
	res, err := Paths([]string{dir}, config.Options{}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if res.Documents != 3 || res.Files != 1 {
		t.Errorf("documents = %d, files = %d, want 3 and 1", res.Documents, res.Files)
	}
	if res.Errors() != 2 {
		t.Errorf("errors = %d, want 2: %v", res.Errors(), res.Diagnostics)
	}
	for i := 1; i < len(res.Diagnostics); i++ {
		if a, b := res.Diagnostics[i-1], res.Diagnostics[i]; a.File == b.File && a.Line > b.Line {
			t.Errorf("diagnostics not sorted by line: %v", res.Diagnostics)
		}
	}
	if res.Snapshot.Version != 7 || len(res.Snapshot.Services) != 1 || res.Snapshot.Services[0].Host != "good.example.com" {
		t.Fatalf("snapshot v%d services %v, want v7 with only good.example.com", res.Snapshot.Version, res.Snapshot.Services)
	}
	for _, d := range res.Diagnostics {
		if d.Level == diag.Error && d.Name == "good" {
			t.Errorf("the valid entry got an error: %s", d)
		}
	}
	t.Run("fails on an unreadable path", func(t *testing.T) {
		if _, err := Paths([]string{filepath.Join(dir, "missing")}, config.Options{}, 1); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestAutoAddresses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	entry := func(name, host string) string {
		return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: " + name + "}\nspec:\n  hosts: [" + host +
			"]\n  ports: [{number: 9000, name: tcp, protocol: TCP}]\n  resolution: STATIC\n  endpoints: [{address: 127.0.0.1}]\n---\n"
	}
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(entry("db-a", "a.db.test")+entry("db-b", "b.db.test")), 0o644)
	codes := func(res *Result) map[string]diag.Level {
		out := map[string]diag.Level{}
		for _, d := range res.Diagnostics {
			out[d.Code] = d.Level
		}
		return out
	}
	t.Run("warns of the port clash without the DNS proxy", func(t *testing.T) {
		res, err := Paths([]string{dir}, config.Options{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if lvl, ok := codes(res)["ME2001"]; !ok || lvl != diag.Warning {
			t.Fatalf("findings %v, want an ME2001 warning", res.Diagnostics)
		}
	})
	t.Run("notes the clash is gone with the DNS proxy, and warns of a host the range has no room for", func(t *testing.T) {
		one := func(hosts []string, _ []netip.Prefix) map[string][]netip.Addr {
			// A range with room for one host: the first gets it, the second none.
			return map[string][]netip.Addr{hosts[0]: {netip.MustParseAddr("240.240.0.1")}}
		}
		res, err := Paths([]string{dir}, config.Options{}, 1, WithAutoAddresses(one))
		if err != nil {
			t.Fatal(err)
		}
		got := codes(res)
		if got["ME2001"] != diag.Info || got["ME2010"] != diag.Warning {
			t.Fatalf("findings %v, want ME2001 as a note and ME2010 as a warning", res.Diagnostics)
		}
		for _, d := range res.Diagnostics {
			if d.Code == "ME2010" && (d.Name != "db-b" || d.Field != "spec.hosts[0]" || d.Line == 0) {
				t.Fatalf("ME2010 located at %s", d)
			}
		}
	})
}
