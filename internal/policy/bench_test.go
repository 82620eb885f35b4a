package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/registry"
)

// BenchmarkFor looks up rules among 1,000 services with exact, wildcard, exported and root rules.
func BenchmarkFor(b *testing.B) {
	var y strings.Builder
	for i := 0; i < 1000; i++ {
		ns := fmt.Sprintf("ns%d", i%20)
		host := fmt.Sprintf("svc%d.%s.example.com", i, ns)
		y.WriteString(serviceEntry(ns, fmt.Sprintf("se%d", i), host))
		if i%2 == 0 {
			y.WriteString(dr(ns, fmt.Sprintf("dr%d", i), host, "  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: SIMPLE}\n"))
		}
	}
	for n := 0; n < 20; n++ {
		y.WriteString(dr("istio-system", fmt.Sprintf("wild%d", n), fmt.Sprintf("'*.ns%d.example.com'", n), ""))
	}
	docs := decode(b, y.String())
	snap := registry.Build(docs, 1)
	x := Build(docs, "")
	proxy := Proxy{Namespace: "client", Labels: map[string]string{"app": "web"}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		svc := snap.Services[i%len(snap.Services)]
		if _, ok := x.For(svc, 443, proxy); !ok {
			b.Fatalf("no rule for %s", svc.Host)
		}
	}
}
