package mcp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// entriesSnapshot compiles n ServiceEntries, the one named changed carrying port.
func entriesSnapshot(b *testing.B, n int, port int) *registry.Snapshot {
	b.Helper()
	var sb strings.Builder
	for i := range n {
		p := 80
		if i == n/2 {
			p = port
		}
		fmt.Fprintf(&sb, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se%d, namespace: ns%d}\n"+
			"spec: {hosts: [h%d.example.com], ports: [{number: %d, name: http, protocol: HTTP}], resolution: DNS}\n", i, i%8, i, p)
	}
	order := 0
	docs, diags := config.Decode("bench.yaml", strings.NewReader(sb.String()), "default", &order)
	res := compile.Documents(config.Result{Documents: docs, Diagnostics: diags, Read: len(docs)}, 1)
	if res.Errors() > 0 {
		b.Fatal(res.Diagnostics)
	}
	return res.Snapshot
}

// BenchmarkSetOneChanged publishes 10,000 ServiceEntries, then, per op, the same set with one
// entry changed: the reload of `meshentry xds` after one document changed.
func BenchmarkSetOneChanged(b *testing.B) {
	first := entriesSnapshot(b, 10000, 80)
	// The second snapshot shares the first's unchanged documents, as an incremental reload does.
	changed := entriesSnapshot(b, 10000, 8080)
	second := &registry.Snapshot{Documents: append([]*config.Document(nil), first.Documents...)}
	second.Documents[len(second.Documents)/2] = changed.Documents[len(changed.Documents)/2]
	c := NewCache()
	if err := c.Set(first); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		snap := second
		if i%2 == 1 {
			snap = first
		}
		if err := c.Set(snap); err != nil {
			b.Fatal(err)
		}
	}
}
