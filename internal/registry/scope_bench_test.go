package registry

import (
	"net/netip"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// scopedSnapshot is the 100,000-entry lookup snapshot plus a Sidecar with a port listener and a
// catch-all, so that Match consults the scope on every candidate.
func scopedSnapshot(b *testing.B) (*Snapshot, *Scope) {
	docs := syntheticEntries(100_000)
	sc := config.NewDocument(config.KindSidecar, "default", "narrow", &networking.Sidecar{Egress: []*networking.IstioEgressListener{
		{Port: &networking.SidecarPort{Number: 443, Protocol: "TLS", Name: "tls"}, Hosts: []string{"./*.b.example.com"}},
		{Hosts: []string{"*/*.a.example.com"}},
	}})
	docs = append(docs, sc)
	s := Build(docs, 1)
	b.ResetTimer()
	return s, NewScope(s, ScopeProxy{Namespace: "default", RootNamespace: "istio-system"})
}

func BenchmarkMatchTLSScoped(b *testing.B) {
	s, sc := scopedSnapshot(b)
	for _, bc := range []struct {
		name  string
		scope *Scope
	}{{name: "no scope", scope: nil}, {name: "sidecar", scope: sc}} {
		b.Run(bc.name, func(b *testing.B) {
			q := Query{Namespace: "default", Host: "svc31337.b.example.com", Port: 443, Protocol: TrafficTLS, IP: netip.MustParseAddr("192.0.2.1"), Scope: bc.scope}
			b.ReportAllocs()
			for b.Loop() {
				if s.Match(q, false).Outcome != Matched {
					b.Fatal("miss")
				}
			}
		})
	}
}

func BenchmarkNewScope100kEntries(b *testing.B) {
	s, _ := scopedSnapshot(b)
	b.ReportAllocs()
	for b.Loop() {
		NewScope(s, ScopeProxy{Namespace: "default", RootNamespace: "istio-system"})
	}
}
