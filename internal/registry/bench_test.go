package registry

import (
	"fmt"
	"net/netip"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// syntheticEntries makes n ServiceEntries with three hosts each: a quarter carry a wildcard host,
// a quarter a single VIP, a quarter a CIDR, and every one has two static endpoints.
func syntheticEntries(n int) []*config.Document {
	docs := make([]*config.Document, 0, n)
	for i := 0; i < n; i++ {
		se := &networking.ServiceEntry{
			Hosts: []string{
				fmt.Sprintf("svc%d.a.example.com", i),
				fmt.Sprintf("svc%d.b.example.com", i),
				fmt.Sprintf("svc%d.c.example.com", i),
			},
			Ports: []*networking.ServicePort{
				{Number: 80, Name: "http", Protocol: "HTTP"},
				{Number: 443, Name: "tls", Protocol: "TLS"},
			},
			Resolution: networking.ServiceEntry_STATIC,
			Endpoints: []*networking.WorkloadEntry{
				{Address: fmt.Sprintf("127.%d.%d.1", i/256%256, i%256), Weight: 2, Locality: "r1/z1/s1"},
				{Address: fmt.Sprintf("127.%d.%d.2", i/256%256, i%256), Ports: map[string]uint32{"http": 8080}},
			},
		}
		switch i % 4 {
		case 1:
			se.Hosts[2] = fmt.Sprintf("*.wild%d.example.com", i)
		case 2:
			se.Addresses = []string{fmt.Sprintf("10.%d.%d.1", i/256%256, i%256)}
		case 3:
			se.Addresses = []string{fmt.Sprintf("10.%d.%d.0/24", 128+i/256%128, i%256)}
		}
		d := config.NewDocument(config.KindServiceEntry, "default", fmt.Sprintf("se-%d", i), se)
		d.Order = i
		docs = append(docs, d)
	}
	return docs
}

func BenchmarkBuild10kEntries(b *testing.B) {
	docs := syntheticEntries(10_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s := Build(docs, 1)
		if len(s.Services) != 30_000 {
			b.Fatalf("services = %d", len(s.Services))
		}
	}
}

// lookupSnapshot holds 100,000 hosts (33,334 entries of three hosts).
func lookupSnapshot(b *testing.B) *Snapshot {
	b.Helper()
	return Build(syntheticEntries(33_334), 1)
}

func BenchmarkLookupExactHost(b *testing.B) {
	s := lookupSnapshot(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if s.LookupHost("svc31337.b.example.com", 443, "default") == nil {
			b.Fatal("miss")
		}
	}
}

func BenchmarkLookupWildcardHost(b *testing.B) {
	s := lookupSnapshot(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if s.LookupHost("deep.api.wild31337.example.com", 443, "default") == nil {
			b.Fatal("miss")
		}
	}
}

func BenchmarkLookupIP(b *testing.B) {
	s := lookupSnapshot(b)
	ip := netip.MustParseAddr("10.122.58.1") // svc 31290: i%4 == 2, a single VIP
	if s.LookupIP(ip, 80, "default") == nil {
		b.Fatal("setup: no service for", ip)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if s.LookupIP(ip, 80, "default") == nil {
			b.Fatal("miss")
		}
	}
}

func BenchmarkLookupCIDR(b *testing.B) {
	s := lookupSnapshot(b)
	ip := netip.MustParseAddr("10.250.7.77")
	if s.LookupIP(ip, 443, "default") == nil {
		b.Fatal("setup: no service for", ip)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if s.LookupIP(ip, 443, "default") == nil {
			b.Fatal("miss")
		}
	}
}

func BenchmarkMatchTLS(b *testing.B) {
	s := lookupSnapshot(b)
	q := Query{Namespace: "default", Host: "svc31337.b.example.com", Port: 443, Protocol: TrafficTLS, IP: netip.MustParseAddr("192.0.2.1")}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if s.Match(q, false).Outcome != Matched {
			b.Fatal("miss")
		}
	}
}

func BenchmarkIsHostName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !IsHostName("deep.api.wild31337.example.com") {
			b.Fatal("not a name")
		}
	}
}
