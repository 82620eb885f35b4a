package resolve

import (
	"math"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func reply(t testing.TB, qname string, qtype uint16, answers ...string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.Response = true
	for _, text := range answers {
		rr, err := dns.NewRR(text)
		if err != nil {
			t.Fatalf("record %q: %v", text, err)
		}
		m.Answer = append(m.Answer, rr)
	}
	return m
}

func TestExtract(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		qtype    uint16
		answers  []string
		want     []netip.Addr
		wantTTL  uint32
		wantNext string
		wantErr  bool
	}{
		{
			name:    "takes the smallest TTL along the chain",
			qtype:   dns.TypeA,
			answers: []string{"a.example. 60 IN CNAME b.example.", "b.example. 7 IN CNAME c.example.", "c.example. 300 IN A 10.0.0.1"},
			want:    addrs("10.0.0.1"),
			wantTTL: 7,
		},
		{
			name:    "ignores address records that are not on the chain",
			qtype:   dns.TypeA,
			answers: []string{"evil.example. 60 IN A 10.6.6.6", "a.example. 60 IN A 10.0.0.1"},
			want:    addrs("10.0.0.1"),
			wantTTL: 60,
		},
		{
			name:    "ignores records of the other address family",
			qtype:   dns.TypeAAAA,
			answers: []string{"a.example. 60 IN A 10.0.0.1", "a.example. 30 IN AAAA fd00::1"},
			want:    addrs("fd00::1"),
			wantTTL: 30,
		},
		{
			name:     "hands back the end of a chain that has no addresses yet",
			qtype:    dns.TypeA,
			answers:  []string{"a.example. 60 IN CNAME b.example.", "b.example. 20 IN CNAME c.other."},
			wantTTL:  20,
			wantNext: "c.other.",
		},
		{
			name:    "refuses a CNAME loop",
			qtype:   dns.TypeA,
			answers: []string{"a.example. 60 IN CNAME b.example.", "b.example. 60 IN CNAME a.example."},
			wantErr: true,
		},
		{
			name:    "finds nothing in an empty answer",
			qtype:   dns.TypeA,
			wantTTL: math.MaxUint32,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ttl, next, err := extract(reply(t, "a.example.", tc.qtype, tc.answers...), "a.example.", tc.qtype)
			if (err != nil) != tc.wantErr {
				t.Fatalf("extract error = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if !slices.Equal(got, tc.want) || ttl != tc.wantTTL || next != tc.wantNext {
				t.Errorf("extract = %v, ttl %d, next %q; want %v, ttl %d, next %q", got, ttl, next, tc.want, tc.wantTTL, tc.wantNext)
			}
		})
	}
}

// FuzzExtract feeds arbitrary bytes through the same path a reply takes, to show that no reply
// the miekg parser accepts can make the CNAME walk panic or return an address of the wrong family.
func FuzzExtract(f *testing.F) {
	for _, m := range []*dns.Msg{
		reply(f, "a.example.", dns.TypeA, "a.example. 60 IN A 10.0.0.1"),
		reply(f, "a.example.", dns.TypeAAAA, "a.example. 60 IN CNAME b.example.", "b.example. 60 IN AAAA fd00::1"),
		reply(f, "a.example.", dns.TypeA, "a.example. 60 IN CNAME a.example."),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if m.Unpack(data) != nil || len(m.Question) == 0 {
			return
		}
		q := m.Question[0]
		if check(m, q.Name, q.Qtype) != nil {
			return
		}
		got, _, _, err := extract(m, q.Name, q.Qtype)
		if err != nil {
			return
		}
		for _, a := range got {
			if !a.IsValid() || (q.Qtype == dns.TypeA) != a.Is4() {
				t.Fatalf("extract returned %v for a %s question", a, dns.TypeToString[q.Qtype])
			}
		}
	})
}
