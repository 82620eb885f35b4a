package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
)

// BenchmarkUpdate10k measures what Update adds to a reload of 10,000 ServiceEntries beside the
// compile: the carry-over of pool, health and DNS state between two snapshots of that size.
func BenchmarkUpdate10k(b *testing.B) {
	var sb strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-%d}\nspec:\n"+
			"  hosts: [svc%d.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n"+
			"  endpoints: [{address: 127.0.%d.%d}, {address: svc%d.internal}]\n---\n", i, i, i/256%256, i%256, i)
	}
	snapshot := func() *registry.Snapshot {
		order := 0
		docs, diags := config.Decode("bench.yaml", strings.NewReader(sb.String()), "default", &order)
		res := compile.Documents(config.Result{Documents: docs, Diagnostics: diags}, 1)
		if res.Errors() > 0 {
			b.Fatal(res.Diagnostics[0])
		}
		return res.Snapshot
	}
	a, c := snapshot(), snapshot()
	r, err := resolve.New(resolve.Config{Server: "127.0.0.1:1"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	p := New(Config{Resolver: r}, a)
	defer p.pool.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			p.Update(c)
		} else {
			p.Update(a)
		}
	}
}
