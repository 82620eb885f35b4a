package resolve

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestLookup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		server       behaviour
		lookup       string
		want         []netip.Addr
		wantNotFound bool
		wantTCP      bool
	}{
		{
			name: "returns both the IPv4 and the IPv6 addresses of a name, IPv4 first",
			server: behaviour{records: []string{
				"svc.example. 30 IN AAAA fd00::1",
				"svc.example. 30 IN A 10.0.0.1",
				"svc.example. 30 IN A 10.0.0.2",
			}},
			lookup: "svc.example",
			want:   addrs("10.0.0.1", "10.0.0.2", "fd00::1"),
		},
		{
			name: "follows a CNAME chain the server returns whole",
			server: behaviour{records: []string{
				"svc.example. 30 IN CNAME mid.example.",
				"mid.example. 30 IN CNAME end.example.",
				"end.example. 30 IN A 10.0.0.9",
			}},
			lookup: "svc.example",
			want:   addrs("10.0.0.9"),
		},
		{
			name: "chases a CNAME the server leaves unanswered with a new query",
			server: behaviour{noChase: true, records: []string{
				"svc.example. 30 IN CNAME mid.example.",
				"mid.example. 30 IN CNAME end.example.",
				"end.example. 30 IN A 10.0.0.9",
				"end.example. 30 IN AAAA fd00::9",
			}},
			lookup: "svc.example",
			want:   addrs("10.0.0.9", "fd00::9"),
		},
		{
			name:    "asks again over TCP when the UDP answer is truncated",
			server:  behaviour{truncateUDP: true, records: []string{"big.example. 30 IN A 10.0.0.3"}},
			lookup:  "big.example",
			want:    addrs("10.0.0.3"),
			wantTCP: true,
		},
		{
			name:         "reports a name the server does not know as not found",
			server:       behaviour{records: []string{"other.example. 30 IN A 10.0.0.1"}},
			lookup:       "missing.example",
			wantNotFound: true,
		},
		{
			name:         "reports a name without address records as not found",
			server:       behaviour{records: []string{`txt.example. 30 IN TXT "hello"`}},
			lookup:       "txt.example",
			wantNotFound: true,
		},
		{
			name:         "reports a CNAME to a missing name as not found",
			server:       behaviour{records: []string{"dangling.example. 30 IN CNAME gone.example."}},
			lookup:       "dangling.example",
			wantNotFound: true,
		},
		{
			name:   "treats an upper-case name with a trailing dot like its canonical form",
			server: behaviour{records: []string{"svc.example. 30 IN A 10.0.0.1"}},
			lookup: "SVC.Example.",
			want:   addrs("10.0.0.1"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tc.server)
			r, _ := newTestResolver(t, srv, Config{})
			got, err := r.Lookup(t.Context(), tc.lookup)
			var nf *NotFoundError
			if tc.wantNotFound {
				if !errors.As(err, &nf) {
					t.Fatalf("Lookup(%q) = %v, %v; want a *NotFoundError", tc.lookup, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tc.lookup, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Lookup(%q) = %v, want %v", tc.lookup, got, tc.want)
			}
			if gotTCP := srv.tcpQueries.Load() > 0; gotTCP != tc.wantTCP {
				t.Errorf("queries over TCP: %v, want %v", gotTCP, tc.wantTCP)
			}
		})
	}
}

func TestLookupReturnsIPLiteralsWithoutAQuery(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{})
	r, _ := newTestResolver(t, srv, Config{})
	tests := []struct {
		name    string
		literal string
		want    netip.Addr
	}{
		{name: "an IPv4 address is returned as is", literal: "192.0.2.7", want: netip.MustParseAddr("192.0.2.7")},
		{name: "an IPv6 address is returned as is", literal: "2001:db8::7", want: netip.MustParseAddr("2001:db8::7")},
		{name: "a bracketed IPv6 address loses its brackets", literal: "[2001:db8::7]", want: netip.MustParseAddr("2001:db8::7")},
		{name: "an IPv6 address keeps its zone", literal: "fe80::1%eth0", want: netip.MustParseAddr("fe80::1%eth0")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := r.Lookup(t.Context(), tc.literal)
			if err != nil || len(got) != 1 || got[0] != tc.want {
				t.Errorf("Lookup(%q) = %v, %v; want [%v]", tc.literal, got, err, tc.want)
			}
		})
	}
	if n := srv.queries(); n != 0 {
		t.Errorf("server saw %d queries for IP literals, want 0", n)
	}
}

// TestLookupOnTheHotPathDoesNotAllocate is not parallel: AllocsPerRun counts the allocations
// of the whole process.
func TestLookupOnTheHotPathDoesNotAllocate(t *testing.T) {
	srv := startServer(t, behaviour{records: []string{"svc.example. 300 IN A 10.0.0.1", "svc.example. 300 IN AAAA fd00::1"}})
	r, _ := newTestResolver(t, srv, Config{})
	tests := []struct {
		name   string
		lookup string
	}{
		{name: "a cached name costs no allocation", lookup: "svc.example"},
		{name: "an IPv4 literal costs no allocation once seen", lookup: "192.0.2.7"},
		{name: "a bracketed IPv6 literal costs no allocation once seen", lookup: "[2001:db8::7]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, err := r.Lookup(t.Context(), tc.lookup)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", tc.lookup, err)
			}
			ctx := context.Background()
			same := true
			allocs := testing.AllocsPerRun(100, func() {
				got, err := r.Lookup(ctx, tc.lookup)
				same = same && err == nil && len(got) == len(first) && &got[0] == &first[0]
			})
			if allocs != 0 {
				t.Errorf("Lookup(%q) made %v allocations, want 0", tc.lookup, allocs)
			}
			if !same {
				t.Errorf("Lookup(%q) returned another slice than the first lookup's", tc.lookup)
			}
		})
	}
}

func TestLookupRejectsInvalidNames(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{})
	r, _ := newTestResolver(t, srv, Config{})
	for _, name := range []string{"", ".", "a..b", strings.Repeat("a", 300) + ".example"} {
		if got, err := r.Lookup(t.Context(), name); err == nil {
			t.Errorf("Lookup(%q) = %v, want an error", name, got)
		}
	}
	if n := srv.queries(); n != 0 {
		t.Errorf("server saw %d queries for invalid names, want 0", n)
	}
}

func TestLookupHonoursTheTTL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ttl  string
		// stillOld is a moment, before the refresh point, when the old answer must be served
		// without a query; changedAt is a moment past the (clamped) TTL.
		stillOld  time.Duration
		changedAt time.Duration
	}{
		{name: "a 30 second TTL keeps the answer for 30 seconds", ttl: "30", stillOld: 20 * time.Second, changedAt: 31 * time.Second},
		{name: "a zero TTL is raised to MinTTL", ttl: "0", stillOld: 700 * time.Millisecond, changedAt: 1100 * time.Millisecond},
		{name: "a day-long TTL is cut to MaxTTL", ttl: "86400", stillOld: 3 * time.Minute, changedAt: 5*time.Minute + time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, behaviour{records: []string{"svc.example. " + tc.ttl + " IN A 10.0.0.1"}})
			r, clock := newTestResolver(t, srv, Config{})
			mustLookup(t, r, "svc.example", addrs("10.0.0.1"))
			asked := srv.queries()

			srv.set(t, behaviour{records: []string{"svc.example. " + tc.ttl + " IN A 10.0.0.2"}})
			clock.Advance(tc.stillOld)
			mustLookup(t, r, "svc.example", addrs("10.0.0.1"))
			if n := srv.queries(); n != asked {
				t.Errorf("server saw %d queries before the TTL ran out, want %d", n, asked)
			}

			clock.Advance(tc.changedAt - tc.stillOld)
			mustLookup(t, r, "svc.example", addrs("10.0.0.2"))
		})
	}
}

func TestLookupRefreshesABusyNameInTheBackground(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1"}})
	r, clock := newTestResolver(t, srv, Config{})
	mustLookup(t, r, "svc.example", addrs("10.0.0.1"))

	srv.set(t, behaviour{delay: 100 * time.Millisecond, records: []string{"svc.example. 10 IN A 10.0.0.2"}})
	clock.Advance(9 * time.Second)
	for range 50 {
		// Past 80% of the TTL, lookups still get the cached answer at once.
		mustLookup(t, r, "svc.example", addrs("10.0.0.1"))
	}
	waitFor(t, "the background refresh", func() bool {
		got, err := r.Lookup(t.Context(), "svc.example")
		return err == nil && slices.Equal(got, addrs("10.0.0.2"))
	})
	if n := srv.queries(); n != 4 {
		t.Errorf("server saw %d queries, want 4: one A and one AAAA each for the first lookup and the refresh", n)
	}
}

func TestLookupCachesAMissingName(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{})
	r, clock := newTestResolver(t, srv, Config{NegativeTTL: 5 * time.Second})
	for range 3 {
		var nf *NotFoundError
		if _, err := r.Lookup(t.Context(), "new.example"); !errors.As(err, &nf) || nf.Name != "new.example" {
			t.Fatalf("Lookup: %v, want a *NotFoundError for new.example", err)
		}
	}
	if n := srv.queries(); n != 2 {
		t.Errorf("server saw %d queries, want 2: a missing name is cached", n)
	}

	srv.set(t, behaviour{records: []string{"new.example. 10 IN A 10.0.0.5"}})
	clock.Advance(4 * time.Second)
	if _, err := r.Lookup(t.Context(), "new.example"); err == nil {
		t.Errorf("Lookup found the name before NegativeTTL ran out")
	}
	clock.Advance(2 * time.Second)
	mustLookup(t, r, "new.example", addrs("10.0.0.5"))
}

func TestConcurrentLookupsShareOneQuery(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{delay: 200 * time.Millisecond, records: []string{"svc.example. 30 IN A 10.0.0.1"}})
	r, _ := newTestResolver(t, srv, Config{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() { mustLookup(t, r, "svc.example", addrs("10.0.0.1")) })
	}
	wg.Wait()
	if n := srv.queries(); n != 2 {
		t.Errorf("server saw %d queries for 32 concurrent lookups, want 2 (one A, one AAAA)", n)
	}
}

func TestLookupReportsAMalformedReplyAsAnError(t *testing.T) {
	t.Parallel()
	header := func(req *dns.Msg, qd, an uint16) []byte {
		b := make([]byte, 12)
		binary.BigEndian.PutUint16(b[0:], req.Id)
		binary.BigEndian.PutUint16(b[2:], 0x8180) // response, RD, RA, NOERROR
		binary.BigEndian.PutUint16(b[4:], qd)
		binary.BigEndian.PutUint16(b[6:], an)
		return b
	}
	goodReply := func(req *dns.Msg) *dns.Msg {
		m := new(dns.Msg)
		m.SetReply(req)
		rr, _ := dns.NewRR("svc.example. 30 IN A 10.0.0.1")
		m.Answer = append(m.Answer, rr)
		return m
	}
	tests := []struct {
		name  string
		reply func(req *dns.Msg) []byte
	}{
		{
			name:  "text instead of a DNS message",
			reply: func(*dns.Msg) []byte { return []byte("HTTP/1.1 400 Bad Request\r\n\r\n") },
		},
		{
			name:  "a header shorter than twelve bytes",
			reply: func(req *dns.Msg) []byte { return header(req, 0, 0)[:7] },
		},
		{
			name:  "a header promising records that are not there",
			reply: func(req *dns.Msg) []byte { return header(req, 1, 5) },
		},
		{
			name:  "a name compressed into a pointer loop",
			reply: func(req *dns.Msg) []byte { return append(header(req, 1, 0), 0xc0, 0x0c, 0, 1, 0, 1) },
		},
		{
			name: "a reply cut off in the middle of a record",
			reply: func(req *dns.Msg) []byte {
				b, _ := goodReply(req).Pack()
				return b[:len(b)-3]
			},
		},
		{
			name: "a reply to another question",
			reply: func(req *dns.Msg) []byte {
				m := goodReply(req)
				m.Question[0].Name = "other.example."
				b, _ := m.Pack()
				return b
			},
		},
		{
			name: "a query instead of a reply",
			reply: func(req *dns.Msg) []byte {
				m := goodReply(req)
				m.Response = false
				b, _ := m.Pack()
				return b
			},
		},
		{
			name: "an address record with empty data",
			reply: func(req *dns.Msg) []byte {
				m := goodReply(req)
				m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "svc.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}}}
				b, _ := m.Pack()
				return b
			},
		},
	}
	for _, tc := range tests {
		t.Run("gives an error for "+tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, behaviour{garbage: tc.reply})
			r, _ := newTestResolver(t, srv, Config{Timeout: 300 * time.Millisecond})
			got, err := r.Lookup(t.Context(), "svc.example")
			if err == nil {
				t.Fatalf("Lookup = %v, want an error", got)
			}
			t.Logf("Lookup: %v", err)
		})
	}
}

func TestLookupStopsWaitingWhenTheCallerGivesUp(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{silent: true})
	r, _ := newTestResolver(t, srv, Config{Timeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Lookup(ctx, "svc.example"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lookup: %v, want the caller's deadline", err)
	}

	// The query is still in flight; Close must cut it short rather than wait 5 seconds.
	start := time.Now()
	r.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %s with a query in flight", d)
	}
}

func TestLookupAfterCloseUsesOnlyTheCache(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{records: []string{"svc.example. 30 IN A 10.0.0.1"}})
	r, _ := newTestResolver(t, srv, Config{})
	mustLookup(t, r, "svc.example", addrs("10.0.0.1"))
	r.Close()
	r.Close()
	mustLookup(t, r, "svc.example", addrs("10.0.0.1"))
	if _, err := r.Lookup(t.Context(), "other.example"); !errors.Is(err, ErrClosed) {
		t.Errorf("Lookup of an uncached name after Close: %v, want ErrClosed", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		cfg         Config
		wantServers []string
		wantErr     bool
	}{
		{name: "keeps a server's explicit port", cfg: Config{Server: "127.0.0.1:5353"}, wantServers: []string{"127.0.0.1:5353"}},
		{name: "gives a server without a port port 53", cfg: Config{Server: "192.0.2.1"}, wantServers: []string{"192.0.2.1:53"}},
		{name: "gives an IPv6 server without a port port 53", cfg: Config{Server: "2001:db8::53"}, wantServers: []string{"[2001:db8::53]:53"}},
		{name: "refuses a negative timeout", cfg: Config{Server: "127.0.0.1:53", Timeout: -time.Second}, wantErr: true},
		{name: "refuses a MinTTL above MaxTTL", cfg: Config{Server: "127.0.0.1:53", MinTTL: time.Hour, MaxTTL: time.Minute}, wantErr: true},
		{name: "refuses a negative MaxStale", cfg: Config{Server: "127.0.0.1:53", MaxStale: -time.Second}, wantErr: true},
		{name: "refuses a negative MaxEntries", cfg: Config{Server: "127.0.0.1:53", MaxEntries: -1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tc.cfg)
			if tc.wantErr {
				if err == nil {
					r.Close()
					t.Fatal("New succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer r.Close()
			if !slices.Equal(r.servers, tc.wantServers) {
				t.Errorf("servers = %v, want %v", r.servers, tc.wantServers)
			}
		})
	}
	t.Run("serves a stale answer for at most an hour and caches 10,000 names by default", func(t *testing.T) {
		t.Parallel()
		r, err := New(Config{Server: "127.0.0.1:53"})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer r.Close()
		if r.maxStale != time.Hour || r.maxCount != 10_000 {
			t.Errorf("maxStale = %s, maxCount = %d; want 1h, 10000", r.maxStale, r.maxCount)
		}
	})
	t.Run("reads the name servers of /etc/resolv.conf when no server is given", func(t *testing.T) {
		t.Parallel()
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if _, statErr := os.Stat("/etc/resolv.conf"); statErr != nil || err != nil || len(conf.Servers) == 0 {
			t.Skip("no usable /etc/resolv.conf here")
		}
		r, err := New(Config{})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer r.Close()
		if len(r.servers) != len(conf.Servers) {
			t.Errorf("servers = %v, want one per nameserver of %v", r.servers, conf.Servers)
		}
	})
}

func mustLookup(t testing.TB, r *Resolver, name string, want []netip.Addr) {
	t.Helper()
	got, err := r.Lookup(context.Background(), name)
	if err != nil {
		t.Errorf("Lookup(%q): %v", name, err)
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("Lookup(%q) = %v, want %v", name, got, want)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
