package dnsproxy

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// A cached answer is stored under the lower-cased name, so it serves any spelling of the
// question; its question section must be the asker's own, since resolvers such as musl's match
// an answer to its query byte for byte and drop one that names the question otherwise.
func TestCachedAnswerEchoesTheAskersQuestion(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	up.Set("mixed.test", 60, "192.0.2.7")
	s, _ := newServer(t, Config{Upstreams: []string{up.Addr}}, testConfig)
	addr := serve(t, s)
	ask(t, "udp", addr, "mixed.test", dns.TypeA, 0)
	r := ask(t, "udp", addr, "MiXeD.TeSt", dns.TypeA, 0)
	if up.Queries() != 1 {
		t.Fatalf("upstream asked %d times, want once (the second answer from the cache)", up.Queries())
	}
	if len(r.Question) != 1 || r.Question[0].Name != "MiXeD.TeSt." {
		t.Fatalf("cached answer's question is %v, want the asker's MiXeD.TeSt.", r.Question)
	}
}

// Whether the first asker spoke EDNS0 must not decide what later askers get from the cache: a
// query with an OPT record gets one back (RFC 6891 §6.1.1), and one without gets none.
func TestCachedAnswerCarriesOPTAsTheAskerAsked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		first, later uint16 // EDNS0 sizes; 0 asks without OPT
	}{
		{name: "gives an EDNS0 asker an OPT after a plain asker filled the cache", first: 0, later: 1232},
		{name: "gives a plain asker no OPT after an EDNS0 asker filled the cache", first: 1232, later: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := dnstest.Start(t)
			up.Set("opt.test", 60, "192.0.2.8")
			s, _ := newServer(t, Config{Upstreams: []string{up.Addr}}, testConfig)
			addr := serve(t, s)
			ask(t, "udp", addr, "opt.test", dns.TypeA, tt.first)
			r := ask(t, "udp", addr, "opt.test", dns.TypeA, tt.later)
			if up.Queries() != 1 {
				t.Fatalf("upstream asked %d times, want once", up.Queries())
			}
			if got := r.IsEdns0() != nil; got != (tt.later != 0) {
				t.Fatalf("cached answer has OPT %v, want %v", got, tt.later != 0)
			}
		})
	}
}
