package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

// BenchmarkCompile10kFromYAML runs the whole control-plane pipeline — decode, validate, analyse,
// build — over 10,000 ServiceEntries of three hosts each (a mix of exact, wildcard, VIP and CIDR,
// with endpoints), as `meshentry run` does at start and on every reload.
func BenchmarkCompile10kFromYAML(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 10_000; i++ {
		third := fmt.Sprintf("svc%d.c.example.com", i)
		addresses := ""
		switch i % 4 {
		case 1:
			third = fmt.Sprintf("\"*.wild%d.example.com\"", i)
		case 2:
			addresses = fmt.Sprintf("  addresses: [10.%d.%d.1]\n", i/256%256, i%256)
		case 3:
			addresses = fmt.Sprintf("  addresses: [10.%d.%d.0/24]\n", 128+i/256%128, i%256)
		}
		fmt.Fprintf(&sb, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: se-%d}
spec:
  hosts: [svc%d.a.example.com, svc%d.b.example.com, %s]
%s  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.%d.%d.1, weight: 2, locality: r1/z1/s1}, {address: 127.%d.%d.2, ports: {http: 8080}}]
`, i, i, i, third, addresses, i/256%256, i%256, i/256%256, i%256)
	}
	input := sb.String()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		order := 0
		docs, diags := config.Decode("bench.yaml", strings.NewReader(input), "default", &order)
		res := Documents(config.Result{Documents: docs, Diagnostics: diags, Read: len(docs)}, 1)
		if res.Errors() != 0 || len(res.Snapshot.Services) != 30_000 {
			b.Fatalf("errors %d, services %d: %v", res.Errors(), len(res.Snapshot.Services), res.Diagnostics[:min(3, len(res.Diagnostics))])
		}
	}
}
