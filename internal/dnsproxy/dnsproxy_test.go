package dnsproxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
	"github.com/meshentry/meshentry/internal/vip"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-a, namespace: default}
spec:
  hosts: [a.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db-b, namespace: default}
spec:
  hosts: [b.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: declared, namespace: default}
spec:
  hosts: [declared.test]
  addresses: [10.9.8.7, 2001:db8::7, 10.50.0.0/16]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: team-b}
spec:
  hosts: [private.test]
  exportTo: ["."]
  ports: [{number: 7000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`

// v4Only declares only an IPv4 address.
const v4Only = `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: v4-only, namespace: default}
spec:
  hosts: [web-less.test]
  addresses: [10.9.8.6]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`

func newServer(t testing.TB, cfg Config, yaml string) (*Server, *vip.Allocator) {
	t.Helper()
	alloc, err := vip.New(vip.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	s, err := New(cfg, compileYAML(t, yaml, alloc))
	if err != nil {
		t.Fatal(err)
	}
	return s, alloc
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	up.Set("outside.test", 60, "192.0.2.10")
	up.Set("web.test", 60, "192.0.2.80")
	s, alloc := newServer(t, Config{Upstreams: []string{up.Addr}, Search: []string{"corp.example", "second.example"}}, testConfig+v4Only)
	addr := serve(t, s)
	got := alloc.Snapshot()
	a, b := got["a.db.test"], got["b.db.test"]
	if !a.V4.IsValid() || !b.V4.IsValid() || a.V4 == b.V4 {
		t.Fatalf("allocations a=%v b=%v", a, b)
	}
	cases := []struct {
		name  string
		query string
		qtype uint16
		want  []string
		rcode int
	}{
		{name: "answers an allocated IPv4 address", query: "a.db.test", qtype: dns.TypeA, want: []string{a.V4.String()}},
		{name: "answers an allocated IPv6 address", query: "a.db.test", qtype: dns.TypeAAAA, want: []string{a.V6.String()}},
		{name: "allocates for a DNS-resolution entry too, as Istio's auto-allocation does", query: "b.db.test", qtype: dns.TypeA, want: []string{b.V4.String()}},
		{name: "answers declared single addresses and leaves the CIDR out", query: "DECLARED.test.", qtype: dns.TypeA, want: []string{"10.9.8.7"}},
		{name: "answers a declared IPv6 address", query: "declared.test", qtype: dns.TypeAAAA, want: []string{"2001:db8::7"}},
		{name: "forwards another type of a registry name, as Istio does", query: "declared.test", qtype: dns.TypeMX, rcode: dns.RcodeNameError},
		{name: "answers NOERROR with nothing for a family the host has no address of", query: "web-less.test", qtype: dns.TypeAAAA},
		{name: "forwards an expansion with a later search domain", query: "a.db.test.second.example", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "answers a search-domain expansion with a CNAME to the host", query: "a.db.test.corp.example", qtype: dns.TypeA, want: []string{"CNAME a.db.test.", a.V4.String()}},
		{name: "forwards an HTTP-only host, which gets no address", query: "web.test", qtype: dns.TypeA, want: []string{"192.0.2.80"}},
		{name: "forwards an unknown name", query: "outside.test", qtype: dns.TypeA, want: []string{"192.0.2.10"}},
		{name: "passes the upstream's NXDOMAIN through", query: "missing.test", qtype: dns.TypeA, rcode: dns.RcodeNameError},
		{name: "hides a host exported to another namespace only", query: "private.test", qtype: dns.TypeA, rcode: dns.RcodeNameError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, network := range []string{"udp", "tcp"} {
				r := ask(t, network, addr, tc.query, tc.qtype, 0)
				if r.Rcode != tc.rcode || !slices.Equal(ips(r), tc.want) {
					t.Fatalf("%s over %s: %s %v, want %s %v", tc.query, network, dns.RcodeToString[r.Rcode], ips(r), dns.RcodeToString[tc.rcode], tc.want)
				}
			}
		})
	}
}

func TestExportToPerNamespace(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	s, alloc := newServer(t, Config{Namespace: "team-b", Upstreams: []string{up.Addr}}, testConfig)
	addr := serve(t, s)
	want := alloc.Snapshot()["private.test"].V4.String()
	if r := ask(t, "udp", addr, "private.test", dns.TypeA, 0); !slices.Equal(ips(r), []string{want}) {
		t.Fatalf("team-b's proxy answers private.test with %v, want [%s]", ips(r), want)
	}
}

func TestLargeAnswers(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	s, _ := newServer(t, Config{Upstreams: []string{up.Addr}}, manyAddresses(125))
	addr := serve(t, s)
	t.Run("sends a 2,000-byte answer whole over TCP", func(t *testing.T) {
		r := ask(t, "tcp", addr, "big.test", dns.TypeA, 0)
		r.Compress = true // measure the size as sent, compressed
		if r.Truncated || len(r.Answer) != 125 || r.Len() < 2000 {
			t.Fatalf("TCP answer: TC=%v, %d records, %d bytes; want 125 records over 2,000 bytes", r.Truncated, len(r.Answer), r.Len())
		}
	})
	t.Run("truncates it over UDP to 512 bytes with TC set", func(t *testing.T) {
		r := ask(t, "udp", addr, "big.test", dns.TypeA, 0)
		r.Compress = true
		if !r.Truncated || r.Len() > 512 {
			t.Fatalf("UDP answer: TC=%v, %d bytes", r.Truncated, r.Len())
		}
	})
	t.Run("fits it in a client's larger EDNS0 size", func(t *testing.T) {
		r := ask(t, "udp", addr, "big.test", dns.TypeA, 4096)
		if r.Truncated || len(r.Answer) != 125 {
			t.Fatalf("UDP answer with EDNS0 4096: TC=%v, %d records", r.Truncated, len(r.Answer))
		}
	})
	if st := s.Stats(); st.Truncated != 1 {
		t.Fatalf("truncated counter = %d, want 1", st.Truncated)
	}
}

func TestUpstreamTruncationRetriesOverTCP(t *testing.T) {
	t.Parallel()
	var answer []dns.RR
	for i := range 150 {
		rr, _ := dns.NewRR(fmt.Sprintf("big.up.test. 60 IN A 10.2.%d.%d", i/200, i%200+1))
		answer = append(answer, rr)
	}
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if w.LocalAddr().Network() == "udp" {
			m.Truncated = true
		} else {
			m.Answer = answer
		}
		w.WriteMsg(m)
	})
	s, _ := newServer(t, Config{Upstreams: []string{up.addr}}, testConfig)
	addr := serve(t, s)
	r := ask(t, "tcp", addr, "big.up.test", dns.TypeA, 0)
	if len(r.Answer) != 150 || up.count("udp") != 1 || up.count("tcp") != 1 {
		t.Fatalf("%d records; upstream asked %d times over UDP, %d over TCP; want 150, 1, 1", len(r.Answer), up.count("udp"), up.count("tcp"))
	}
	if r := ask(t, "udp", addr, "big.up.test", dns.TypeA, 0); !r.Truncated {
		t.Fatal("the cached answer went out over UDP without TC")
	}
	if st := s.Stats(); st.TCPRetries != 1 || st.Cached != 1 {
		t.Fatalf("stats %+v, want one TCP retry and one cached answer", st)
	}
}

func TestCache(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	up.Set("cached.test", 60, "192.0.2.1")
	now := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, _ := newServer(t, Config{Upstreams: []string{up.Addr}, CacheSize: 1, Now: clock}, testConfig)
	addr := serve(t, s)
	ask(t, "udp", addr, "cached.test", dns.TypeA, 0)
	mu.Lock()
	now = now.Add(20 * time.Second)
	mu.Unlock()
	r := ask(t, "udp", addr, "cached.test", dns.TypeA, 0)
	if up.Queries() != 1 || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 40 {
		t.Fatalf("upstream asked %d times, answer %v; want once, TTL aged to 40", up.Queries(), r.Answer)
	}
	t.Run("asks again once the TTL ran out", func(t *testing.T) {
		mu.Lock()
		now = now.Add(41 * time.Second)
		mu.Unlock()
		ask(t, "udp", addr, "cached.test", dns.TypeA, 0)
		if up.Queries() != 2 {
			t.Fatalf("upstream asked %d times, want 2", up.Queries())
		}
	})
	t.Run("evicts beyond its size and counts it", func(t *testing.T) {
		ask(t, "udp", addr, "other.test", dns.TypeA, 0)
		if st := s.Stats(); st.CacheEntries != 1 || st.CacheEvictions != 1 {
			t.Fatalf("cache has %d entries, %d evictions; want 1 and 1", st.CacheEntries, st.CacheEvictions)
		}
	})
}

func TestInFlightLimit(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	up := startUpstream(t, func(w dns.ResponseWriter, r *dns.Msg) {
		entered <- struct{}{}
		<-release
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	})
	s, _ := newServer(t, Config{Upstreams: []string{up.addr}, MaxInFlight: 1, Timeout: 5 * time.Second}, testConfig)
	addr := serve(t, s)
	done := make(chan error, 1)
	go func() {
		// Not ask: t.Fatal may only be called from the test's goroutine.
		c := dns.Client{Net: "udp", Timeout: 10 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("slow.test.", dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err == nil && r.Rcode != dns.RcodeSuccess {
			err = fmt.Errorf("first query answered %s", dns.RcodeToString[r.Rcode])
		}
		done <- err
	}()
	<-entered
	r := ask(t, "udp", addr, "second.test", dns.TypeA, 0)
	close(release)
	if err := <-done; err != nil || r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("second query %s, first: %v; want SERVFAIL and an answer", dns.RcodeToString[r.Rcode], err)
	}
	if st := s.Stats(); st.InFlightRejected != 1 {
		t.Fatalf("in-flight rejections = %d, want 1", st.InFlightRejected)
	}
}

func TestUpdateFollowsReloads(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	alloc, _ := vip.New(vip.Config{})
	s, err := New(Config{Namespace: "default", Upstreams: []string{up.Addr}}, compileYAML(t, testConfig, alloc))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	before := ips(ask(t, "udp", addr, "a.db.test", dns.TypeA, 0))
	// The reload drops b.db.test and adds c.db.test; a.db.test keeps its address.
	next := strings.Replace(testConfig, "hosts: [b.db.test]", "hosts: [c.db.test]", 1)
	s.Update(compileYAML(t, next, alloc))
	after := ips(ask(t, "udp", addr, "a.db.test", dns.TypeA, 0))
	c := ips(ask(t, "udp", addr, "c.db.test", dns.TypeA, 0))
	if !slices.Equal(before, after) || len(c) != 1 || c[0] == after[0] {
		t.Fatalf("a.db.test %v then %v; c.db.test %v", before, after, c)
	}
	if r := ask(t, "udp", addr, "b.db.test", dns.TypeA, 0); r.Rcode != dns.RcodeNameError {
		t.Fatalf("b.db.test after it left: %s %v, want the upstream's NXDOMAIN", dns.RcodeToString[r.Rcode], ips(r))
	}
}

func TestTCPConnectionLimit(t *testing.T) {
	t.Parallel()
	up := dnstest.Start(t)
	s, _ := newServer(t, Config{Upstreams: []string{up.Addr}}, testConfig)
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, ln, 1) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	held, err := dns.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// A query on the held connection proves it was accepted before the second one dials.
	m := new(dns.Msg)
	m.SetQuestion("a.db.test.", dns.TypeA)
	held.SetDeadline(time.Now().Add(5 * time.Second))
	if err := held.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	if _, err := held.ReadMsg(); err != nil {
		t.Fatal(err)
	}
	c := dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	if _, _, err := c.Exchange(m, ln.Addr().String()); err == nil {
		t.Fatal("a second TCP connection was answered beyond the limit of 1")
	}
	if st := s.Stats(); st.TCPRefused != 1 {
		t.Fatalf("TCP refusals = %d, want 1", st.TCPRefused)
	}
}
