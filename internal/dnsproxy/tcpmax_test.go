package dnsproxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// A DNS message is at most 65,535 bytes, over TCP too. A host with more addresses than fit
// (5,000 A records are 80,000 bytes) must still be answered, truncated with TC set, rather than
// left unanswered because the whole answer cannot be packed.
func TestAnAnswerTooLargeForTCPIsTruncated(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	// Istio's schema allows 256 addresses per entry; 20 entries for one host hold 5,000.
	var yaml strings.Builder
	for e := range 20 {
		fmt.Fprintf(&yaml, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: big%d}\nspec:\n  hosts: [big.test]\n  addresses:\n", e)
		for i := range 250 {
			fmt.Fprintf(&yaml, "  - 10.%d.%d.%d\n", e+1, i/250, i%250+1)
		}
		yaml.WriteString("  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n  endpoints: [{address: 127.0.0.1}]\n")
	}
	s, _ := newServer(t, Config{Upstreams: []string{up.Addr}}, yaml.String())
	addr := serve(t, s)
	c := dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("big.test.", dns.TypeA)
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("no answer over TCP: %v", err)
	}
	if !r.Truncated || len(r.Answer) == 0 || len(r.Answer) >= 5000 {
		t.Fatalf("TCP answer: TC=%v with %d records; want TC and as many of the 5,000 as fit", r.Truncated, len(r.Answer))
	}
}
