package resolve

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// behaviour is what the test DNS server does with every query until the test changes it.
type behaviour struct {
	// records is the zone, one record per string in zone-file syntax.
	records []string
	// rcode, when not zero, answers every query with this rcode and no records.
	rcode int
	// rcodeFor answers the queries of the listed types with their rcode and no records, so
	// one address family can fail while the other answers.
	rcodeFor map[uint16]int
	// garbage, when set, writes its bytes instead of a reply.
	garbage func(req *dns.Msg) []byte
	// silent drops every query, like a server that is down but still routed.
	silent bool
	// truncateUDP answers UDP with an empty truncated reply and TCP normally.
	truncateUDP bool
	// noChase answers only the asked name, as an authoritative server does for a CNAME
	// pointing out of its zone.
	noChase bool
	// delay holds every answer back, so concurrent lookups overlap.
	delay time.Duration
}

// testServer is a real DNS server on 127.0.0.1, UDP and TCP on the same port, whose answers
// the test can change while it runs.
type testServer struct {
	addr       string
	udpQueries atomic.Int64
	tcpQueries atomic.Int64

	mu   sync.Mutex
	b    behaviour
	zone map[string][]dns.RR

	udp, tcp *dns.Server
	stopOnce sync.Once
}

func startServer(t testing.TB, b behaviour) *testServer {
	t.Helper()
	s := &testServer{}
	s.set(t, b)
	pc, ln := listenPair(t)
	s.addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve)}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve)}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				t.Errorf("test DNS server: %v", err)
			}
		}()
		<-started
	}
	t.Cleanup(s.stop)
	return s
}

// listenPair binds UDP and TCP on one port, since the resolver retries a truncated answer over
// TCP at the address it asked over UDP.
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen udp: %v", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}

func (s *testServer) set(t testing.TB, b behaviour) {
	t.Helper()
	zone := make(map[string][]dns.RR)
	for _, text := range b.records {
		rr, err := dns.NewRR(text)
		if err != nil {
			t.Fatalf("record %q: %v", text, err)
		}
		name := strings.ToLower(rr.Header().Name)
		zone[name] = append(zone[name], rr)
	}
	s.mu.Lock()
	s.b, s.zone = b, zone
	s.mu.Unlock()
}

func (s *testServer) queries() int64 { return s.udpQueries.Load() + s.tcpQueries.Load() }

func (s *testServer) stop() {
	s.stopOnce.Do(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
}

func (s *testServer) serve(w dns.ResponseWriter, req *dns.Msg) {
	tcp := w.LocalAddr().Network() == "tcp"
	if tcp {
		s.tcpQueries.Add(1)
	} else {
		s.udpQueries.Add(1)
	}
	s.mu.Lock()
	b, zone := s.b, s.zone
	s.mu.Unlock()
	time.Sleep(b.delay)
	switch {
	case b.silent:
		return
	case b.garbage != nil:
		w.Write(b.garbage(req))
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	switch {
	case b.rcode != 0:
		m.Rcode = b.rcode
	case b.rcodeFor[req.Question[0].Qtype] != 0:
		m.Rcode = b.rcodeFor[req.Question[0].Qtype]
	case b.truncateUDP && !tcp:
		m.Truncated = true
	default:
		fillAnswer(m, zone, req.Question[0], b.noChase)
	}
	w.WriteMsg(m)
}

// fillAnswer fills m the way a recursive server would: the CNAME chain, then the records asked for,
// or NXDOMAIN, or an SOA for a name without such records.
func fillAnswer(m *dns.Msg, zone map[string][]dns.RR, q dns.Question, noChase bool) {
	name := strings.ToLower(q.Name)
	for hop := 0; hop < 10; hop++ {
		rrs, ok := zone[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
			break
		}
		next := ""
		for _, rr := range rrs {
			switch rr.Header().Rrtype {
			case dns.TypeCNAME:
				m.Answer = append(m.Answer, rr)
				next = strings.ToLower(rr.(*dns.CNAME).Target)
			case q.Qtype:
				m.Answer = append(m.Answer, rr)
			}
		}
		if next == "" || noChase {
			break
		}
		name = next
	}
	if last := len(m.Answer); last == 0 || m.Answer[last-1].Header().Rrtype == dns.TypeCNAME && !noChase {
		soa, _ := dns.NewRR("example. 60 IN SOA ns.example. admin.example. 1 60 60 60 60")
		m.Ns = append(m.Ns, soa)
	}
}

// fakeClock is the resolver's clock in tests, moved by hand so TTLs pass without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logRecorder is a slog handler that keeps the levels it saw, to count warnings.
type logRecorder struct {
	mu     sync.Mutex
	levels []slog.Level
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	l.mu.Lock()
	l.levels = append(l.levels, rec.Level)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(level slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, lv := range l.levels {
		if lv == level {
			n++
		}
	}
	return n
}

// newTestResolver points a resolver at srv with a fake clock unless cfg brings its own, and
// closes it when the test ends.
func newTestResolver(t testing.TB, srv *testServer, cfg Config) (*Resolver, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	cfg.Server = srv.addr
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(r.Close)
	return r, clock
}
