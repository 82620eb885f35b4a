package dnsproxy

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// BenchmarkReply measures the handler's decision and packing for a registry name, the part of
// a query the DNS proxy itself costs (bench/dns.sh measures it over sockets against dnsmasq).
func BenchmarkReply(b *testing.B) {
	up := dnstest.Start(b)
	s, _ := newServer(b, Config{Upstreams: []string{up.Addr}, Search: []string{"corp.example"}}, testConfig)
	req := new(dns.Msg)
	req.SetQuestion("a.db.test.", dns.TypeA)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp := s.reply(req)
		if _, err := resp.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplyCached measures a forwarded name answered from the cache.
func BenchmarkReplyCached(b *testing.B) {
	up := dnstest.Start(b)
	up.Set("cached.test", 300, "192.0.2.1")
	s, _ := newServer(b, Config{Upstreams: []string{up.Addr}}, testConfig)
	req := new(dns.Msg)
	req.SetQuestion("cached.test.", dns.TypeA)
	s.reply(req) // fills the cache
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp := s.reply(req)
		if _, err := resp.PackBuffer(buf); err != nil {
			b.Fatal(err)
		}
	}
}
