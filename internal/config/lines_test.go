package config

import (
	"strings"
	"testing"
)

func TestLineTableFindsFieldsAsWrittenAndSpellsTheirPaths(t *testing.T) {
	t.Parallel()
	const input = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts:\n  - a.com\n  - b.com\n  endpoints:\n  - address: 1.2.3.4\n    labels:\n      app.kubernetes.io/name: x\n      app: y\n"
	order := 0
	docs, diags := Decode("x.yaml", strings.NewReader(input), "d", &order)
	if len(docs) != 1 {
		t.Fatalf("decoded %d documents: %v", len(docs), diags)
	}
	d := docs[0]
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "finds a label key with dots in it", path: "spec.endpoints[0].labels.app.kubernetes.io/name", want: 11},
		{name: "finds the shorter label key beside it", path: "spec.endpoints[0].labels.app", want: 12},
		{name: "finds the second list item, not the first", path: "spec.hosts[1]", want: 7},
		{name: "does not take a prefix of a key for the key", path: "spec.hostsX", want: 4},
		{name: "falls back past a list index not written", path: "spec.hosts[7]", want: 5},
		{name: "finds a metadata key", path: "metadata.name", want: 3},
		{name: "falls back to the document for a path not written at all", path: "status.x", want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := d.LineOf(tc.path); got != tc.want {
				t.Fatalf("LineOf(%q) = %d, want %d", tc.path, got, tc.want)
			}
		})
	}
	t.Run("spells every recorded entry as the path that finds it again", func(t *testing.T) {
		t.Parallel()
		for i, e := range d.lines.entries {
			p := d.lines.path(int32(i))
			if got := d.LineOf(p); got != int(e.line) {
				t.Errorf("entry %d: path %q finds line %d, recorded %d", i, p, got, e.line)
			}
		}
	})
}
