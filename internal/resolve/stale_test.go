package resolve

import (
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestLookupServesTheLastGoodAnswer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		break_ func(t *testing.T, srv *testServer)
	}{
		{
			name:   "while the server answers SERVFAIL",
			break_: func(t *testing.T, srv *testServer) { srv.set(t, behaviour{rcode: dns.RcodeServerFailure}) },
		},
		{
			name:   "while the server answers REFUSED",
			break_: func(t *testing.T, srv *testServer) { srv.set(t, behaviour{rcode: dns.RcodeRefused}) },
		},
		{
			name:   "while the server does not answer at all",
			break_: func(t *testing.T, srv *testServer) { srv.set(t, behaviour{silent: true}) },
		},
		{
			name:   "while the server is stopped",
			break_: func(t *testing.T, srv *testServer) { srv.stop() },
		},
		{
			name: "while the server sends garbage",
			break_: func(t *testing.T, srv *testServer) {
				srv.set(t, behaviour{garbage: func(*dns.Msg) []byte { return []byte("garbage") }})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1", "svc.example. 10 IN AAAA fd00::1"}})
			logs := &logRecorder{}
			r, clock := newTestResolver(t, srv, Config{Timeout: 200 * time.Millisecond, Logger: slog.New(logs)})
			want := addrs("10.0.0.1", "fd00::1")
			mustLookup(t, r, "svc.example", want)

			tc.break_(t, srv)
			for range 3 {
				clock.Advance(11 * time.Second)
				mustLookup(t, r, "svc.example", want)
				mustLookup(t, r, "svc.example", want)
			}
			if n := logs.count(slog.LevelWarn); n != 1 {
				t.Errorf("logged %d warnings, want 1 for the whole failure streak", n)
			}
		})
	}
}

func TestLookupStopsServingTheLastAnswerOfAGoneName(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1", "svc.example. 10 IN AAAA fd00::1"}})
	r, clock := newTestResolver(t, srv, Config{NegativeTTL: 5 * time.Second})
	want := addrs("10.0.0.1", "fd00::1")
	mustLookup(t, r, "svc.example", want)

	// The server now says the name does not exist: a blip during a zone change is bridged
	// for 3×NegativeTTL from the first such answer, and no longer.
	srv.set(t, behaviour{})
	clock.Advance(11 * time.Second)
	mustLookup(t, r, "svc.example", want)
	for range 2 {
		clock.Advance(5 * time.Second)
		mustLookup(t, r, "svc.example", want)
	}
	clock.Advance(5 * time.Second)
	var nf *NotFoundError
	if got, err := r.Lookup(t.Context(), "svc.example"); !errors.As(err, &nf) {
		t.Fatalf("Lookup 3×NegativeTTL after the name went away = %v, %v; want a *NotFoundError", got, err)
	}
	clock.Advance(time.Hour)
	if got, err := r.Lookup(t.Context(), "svc.example"); !errors.As(err, &nf) {
		t.Fatalf("Lookup an hour later = %v, %v; want a *NotFoundError", got, err)
	}

	srv.set(t, behaviour{records: []string{"svc.example. 10 IN A 10.0.0.2"}})
	clock.Advance(6 * time.Second)
	mustLookup(t, r, "svc.example", addrs("10.0.0.2"))
}

func TestLookupStopsServingTheLastAnswerAfterMaxStale(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// broken is what the server does from the first refresh on; want is what lookups
		// get until MaxStale after the last good answer, wantAfter what they get after it,
		// nil for an error.
		broken          behaviour
		want, wantAfter []netip.Addr
	}{
		{
			name:   "a failing server ends the last answer after MaxStale",
			broken: behaviour{rcode: dns.RcodeServerFailure},
			want:   addrs("10.0.0.1", "fd00::1"),
		},
		{
			name:      "a failing family loses its last addresses after MaxStale",
			broken:    behaviour{rcodeFor: map[uint16]int{dns.TypeAAAA: dns.RcodeServerFailure}, records: []string{"svc.example. 10 IN A 10.0.0.1"}},
			want:      addrs("10.0.0.1", "fd00::1"),
			wantAfter: addrs("10.0.0.1"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1", "svc.example. 10 IN AAAA fd00::1"}})
			const maxStale = time.Minute
			r, clock := newTestResolver(t, srv, Config{NegativeTTL: 5 * time.Second, MaxStale: maxStale})
			mustLookup(t, r, "svc.example", tc.want)
			goodAt := clock.Now()

			srv.set(t, tc.broken)
			for clock.Advance(11 * time.Second); clock.Now().Sub(goodAt) <= maxStale; clock.Advance(11 * time.Second) {
				mustLookup(t, r, "svc.example", tc.want)
			}
			got, err := r.Lookup(t.Context(), "svc.example")
			if tc.wantAfter == nil {
				var nf *NotFoundError
				if err == nil || errors.As(err, &nf) {
					t.Errorf("Lookup past MaxStale = %v, %v; want a server failure", got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.wantAfter) {
				t.Errorf("Lookup past MaxStale = %v, %v; want %v", got, err, tc.wantAfter)
			}
		})
	}
}

func TestLookupWarnsOncePerFailureStreak(t *testing.T) {
	t.Parallel()
	good := behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1"}}
	servfail := behaviour{rcode: dns.RcodeServerFailure}
	srv := startServer(t, good)
	logs := &logRecorder{}
	r, clock := newTestResolver(t, srv, Config{Logger: slog.New(logs)})
	mustLookup(t, r, "svc.example", addrs("10.0.0.1"))

	for _, step := range []behaviour{servfail, servfail, good, servfail, servfail} {
		srv.set(t, step)
		clock.Advance(11 * time.Second)
		mustLookup(t, r, "svc.example", addrs("10.0.0.1"))
	}
	if n := logs.count(slog.LevelWarn); n != 2 {
		t.Errorf("logged %d warnings, want 2: one per failure streak", n)
	}
	if n := logs.count(slog.LevelInfo); n != 1 {
		t.Errorf("logged %d recoveries, want 1", n)
	}
}

func TestLookupFailsWithoutAPreviousAnswer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{rcode: dns.RcodeServerFailure})
	r, _ := newTestResolver(t, srv, Config{})
	for range 2 {
		got, err := r.Lookup(t.Context(), "svc.example")
		var nf *NotFoundError
		if err == nil || errors.As(err, &nf) {
			t.Fatalf("Lookup = %v, %v; want a server failure, not a missing name", got, err)
		}
	}
	if n := srv.queries(); n != 4 {
		t.Errorf("server saw %d queries, want 4: a failure is not cached", n)
	}

	srv.set(t, behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1"}})
	mustLookup(t, r, "svc.example", addrs("10.0.0.1"))
}

func TestLookupServesHalfAnAnswerWhenThatIsAllThereIs(t *testing.T) {
	t.Parallel()
	// A queries get a good answer, AAAA queries garbage.
	srv := startServer(t, behaviour{garbage: func(req *dns.Msg) []byte {
		if req.Question[0].Qtype == dns.TypeAAAA {
			return []byte("garbage")
		}
		m := new(dns.Msg)
		m.SetReply(req)
		rr, _ := dns.NewRR("svc.example. 300 IN A 10.0.0.1")
		m.Answer = append(m.Answer, rr)
		b, _ := m.Pack()
		return b
	}})
	r, clock := newTestResolver(t, srv, Config{})
	mustLookup(t, r, "svc.example", addrs("10.0.0.1"))

	srv.set(t, behaviour{records: []string{"svc.example. 300 IN A 10.0.0.1", "svc.example. 300 IN AAAA fd00::1"}})
	clock.Advance(6 * time.Second)
	mustLookup(t, r, "svc.example", addrs("10.0.0.1", "fd00::1"))
}

func TestLookupFollowsTheFamilyThatStillAnswers(t *testing.T) {
	t.Parallel()
	servfail := func(qtype uint16) map[uint16]int { return map[uint16]int{qtype: dns.RcodeServerFailure} }
	tests := []struct {
		name string
		// before is what the server does for the first lookup, after what it does once the
		// record has moved; want is what lookups must get after the move.
		before, after behaviour
		want          []netip.Addr
	}{
		{
			name:   "takes a moved A record while AAAA fails, keeping the last IPv6 addresses",
			before: behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1", "svc.example. 10 IN AAAA fd00::1"}},
			after:  behaviour{rcodeFor: servfail(dns.TypeAAAA), records: []string{"svc.example. 10 IN A 10.0.0.2"}},
			want:   addrs("10.0.0.2", "fd00::1"),
		},
		{
			name:   "takes a moved A record while AAAA has never answered",
			before: behaviour{rcodeFor: servfail(dns.TypeAAAA), records: []string{"svc.example. 10 IN A 10.0.0.1"}},
			after:  behaviour{rcodeFor: servfail(dns.TypeAAAA), records: []string{"svc.example. 10 IN A 10.0.0.2"}},
			want:   addrs("10.0.0.2"),
		},
		{
			name:   "takes a moved AAAA record while A fails, keeping the last IPv4 addresses",
			before: behaviour{records: []string{"svc.example. 10 IN A 10.0.0.1", "svc.example. 10 IN AAAA fd00::1"}},
			after:  behaviour{rcodeFor: servfail(dns.TypeA), records: []string{"svc.example. 10 IN AAAA fd00::2"}},
			want:   addrs("10.0.0.1", "fd00::2"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tc.before)
			r, clock := newTestResolver(t, srv, Config{NegativeTTL: 5 * time.Second})
			if _, err := r.Lookup(t.Context(), "svc.example"); err != nil {
				t.Fatalf("first Lookup: %v", err)
			}
			srv.set(t, tc.after)
			for range 3 {
				clock.Advance(11 * time.Second)
				mustLookup(t, r, "svc.example", tc.want)
			}
			// Half of the answer is old, so it is kept only for NegativeTTL, not for the TTL.
			asked := srv.queries()
			clock.Advance(6 * time.Second)
			mustLookup(t, r, "svc.example", tc.want)
			if n := srv.queries(); n == asked {
				t.Errorf("server saw no query %s after a partial answer, want a new one after NegativeTTL", 6*time.Second)
			}
		})
	}
}
