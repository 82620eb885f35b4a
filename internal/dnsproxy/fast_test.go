package dnsproxy

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// sameAnswer fails unless the fast path's bytes for b, when it takes b, unpack to what the
// general path answers.
func sameAnswer(t *testing.T, s *Server, b []byte) bool {
	t.Helper()
	fast, ok := s.fastReply(b, nil)
	if !ok {
		return false
	}
	got := new(dns.Msg)
	if err := got.Unpack(fast); err != nil {
		t.Fatalf("fast answer does not unpack: %v", err)
	}
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil {
		t.Fatalf("the fast path answered a query that does not unpack: %v", err)
	}
	want := s.reply(req)
	s.truncateFor(req, want)
	// Compare the wire forms, each packed by miekg/dns from its parsed message.
	gb, err1 := got.Pack()
	wb, err2 := want.Pack()
	if err1 != nil || err2 != nil || string(gb) != string(wb) {
		t.Fatalf("fast path answered\n%v\nthe general path\n%v", got, want)
	}
	return true
}

func TestFastPathMatchesGeneralPath(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	s, _ := newServer(t, Config{Upstreams: []string{up.Addr}}, testConfig+v4Only+"---\n"+manyAddresses(60))
	cases := []struct {
		name  string
		qname string
		qtype uint16
		edns  uint16
		do    bool
		fast  bool
	}{
		{name: "answers an allocated IPv4 address", qname: "a.db.test.", qtype: dns.TypeA, fast: true},
		{name: "keeps the client's spelling of the name", qname: "A.Db.TEST.", qtype: dns.TypeAAAA, fast: true},
		{name: "echoes EDNS0 with the DO bit", qname: "declared.test.", qtype: dns.TypeA, edns: 1232, do: true, fast: true},
		{name: "answers NOERROR and nothing for a family the host lacks", qname: "web-less.test.", qtype: dns.TypeAAAA, fast: true},
		{name: "leaves an answer over 512 bytes to the general path, which truncates", qname: "big.test.", qtype: dns.TypeA},
		{name: "fits the same answer in a larger EDNS0 size", qname: "big.test.", qtype: dns.TypeA, edns: 4096, fast: true},
		{name: "leaves a name outside the registry to the general path", qname: "outside.test.", qtype: dns.TypeA},
		{name: "leaves other types to the general path", qname: "a.db.test.", qtype: dns.TypeTXT},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tc.qname, tc.qtype)
			if tc.edns > 0 {
				m.SetEdns0(tc.edns, tc.do)
			}
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if got := sameAnswer(t, s, b); got != tc.fast {
				t.Fatalf("fast path taken = %v, want %v", got, tc.fast)
			}
		})
	}
}

// FuzzFastReply feeds arbitrary packets to the fast path: it must never panic, and what it
// answers must be exactly what the general path answers.
func FuzzFastReply(f *testing.F) {
	for _, q := range []string{"a.db.test.", "declared.test.", "big.test.", "web-less.test."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			m := new(dns.Msg)
			m.SetQuestion(q, qt)
			b, _ := m.Pack()
			f.Add(b)
			m.SetEdns0(1232, true)
			b, _ = m.Pack()
			f.Add(b)
		}
	}
	up := dnstest.Start(f)
	s, _ := newServer(f, Config{Upstreams: []string{up.Addr}}, testConfig+v4Only+"---\n"+manyAddresses(40))
	f.Fuzz(func(t *testing.T, b []byte) {
		sameAnswer(t, s, b)
	})
}
