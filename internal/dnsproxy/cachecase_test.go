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
