package dnsproxy

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// FuzzReply feeds arbitrary messages to the handler's decision and to the UDP truncation, as
// the server does after miekg/dns parsed them: nothing may panic, and every reply must pack.
func FuzzReply(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"a.db.test.", dns.TypeA}, {"a.db.test.corp.example.", dns.TypeAAAA}, {"big.test.", dns.TypeA}, {"nowhere.test.", dns.TypeTXT}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	up := dnstest.Start(f)
	s, _ := newServer(f, Config{Upstreams: []string{up.Addr}, Search: []string{"corp.example"}, Timeout: 200 * time.Millisecond}, testConfig+"---\n"+manyAddresses(40))
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil {
			return
		}
		resp := s.reply(req)
		if resp == nil {
			return
		}
		s.truncateFor(req, resp)
		if _, err := resp.Pack(); err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, resp)
		}
	})
}
