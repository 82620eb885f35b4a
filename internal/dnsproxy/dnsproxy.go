// Package dnsproxy is the proxy's DNS server, as Istio's DNS proxy: it answers A and AAAA
// queries for the ServiceEntry hosts a workload sees with their declared or allocated
// addresses, and forwards every other query to the upstream resolver through a TTL cache.
package dnsproxy

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/registry"
)

// Defaults, where Istio, Envoy or CoreDNS have one.
const (
	// DefaultTTL is the TTL of registry answers (Istio's DNS proxy answers with 30 s).
	DefaultTTL = 30
	// DefaultCacheSize bounds the forwarded answers cached (CoreDNS's cache plugin capacity).
	DefaultCacheSize = 9984
	// DefaultMaxInFlight bounds the forwarded queries waiting on the upstream at once.
	DefaultMaxInFlight = 1024
	// DefaultTimeout bounds one exchange with one upstream server.
	DefaultTimeout = 2 * time.Second
	// maxCacheTTL and negativeTTL: CoreDNS's cache caps success at 3600 s; a negative answer
	// without a SOA is kept briefly.
	maxCacheTTL = time.Hour
	negativeTTL = 5 * time.Second
)

// Config says whom the DNS proxy answers for and where it forwards.
type Config struct {
	// Namespace is the proxy's workload namespace: only hosts exported to it are answered.
	Namespace string
	// Visible narrows the hosts further (the Sidecar scope's egress hosts); nil keeps every
	// host that exportTo lets the namespace see.
	Visible func(*registry.Service) bool
	// Upstreams are "host:port" servers asked in turn for names the registry does not answer.
	Upstreams []string
	// Search are the client's search domains (resolv.conf "search"). As Istio's DNS proxy
	// does, a registry host with the first of them appended, which a client's resolver asks
	// first for a name with fewer dots than its ndots, is answered with a CNAME to the host;
	// the later ones are forwarded (Istio keeps one expansion per host).
	Search []string
	// TTL of registry answers in seconds; 0 means DefaultTTL.
	TTL uint32
	// CacheSize bounds the forwarded answers cached; 0 means DefaultCacheSize, -1 no cache.
	CacheSize int
	// MaxInFlight bounds the forwarded queries in flight; 0 means DefaultMaxInFlight. A query
	// beyond it is answered SERVFAIL at once (and counted), as a client retries that.
	MaxInFlight int
	// Timeout bounds one upstream exchange; 0 means DefaultTimeout.
	Timeout time.Duration
	// Logger receives upstream failures; nil discards.
	Logger *slog.Logger
	// Now replaces time.Now for the cache's clock in tests.
	Now func() time.Time
}

// Stats are the DNS proxy's counters, read by the metrics.
type Stats struct {
	// Registry counts queries answered from the registry, Cached from the cache, Forwarded
	// by asking the upstream.
	Registry, Cached, Forwarded uint64
	// UpstreamFailures counts forwarded queries no upstream answered (SERVFAIL sent).
	UpstreamFailures uint64
	// TCPRetries counts truncated upstream UDP answers asked again over TCP.
	TCPRetries uint64
	// Truncated counts UDP answers truncated to the client's size (TC set).
	Truncated uint64
	// InFlightRejected counts queries refused because MaxInFlight were pending.
	InFlightRejected uint64
	// Malformed counts queries answered FORMERR or NOTIMP, or dropped as responses.
	Malformed uint64
	// TCPRefused counts TCP connections closed because the connection limit was reached.
	TCPRefused uint64
	// CacheEntries and CacheEvictions describe the forward cache.
	CacheEntries   int
	CacheEvictions uint64
	// Hosts is the number of names the registry answers.
	Hosts int
}

// Server answers DNS queries; its table follows the snapshots given to Update.
type Server struct {
	cfg      Config
	table    atomic.Pointer[table]
	cache    *cache
	inFlight chan struct{}
	udp, tcp dns.Client
	log      *slog.Logger

	registry, cached, forwarded, failures, tcpRetries atomic.Uint64
	truncated, rejected, malformed, tcpRefused        atomic.Uint64
}

// New returns a Server answering from snap.
func New(cfg Config, snap *registry.Snapshot) (*Server, error) {
	if len(cfg.Upstreams) == 0 {
		return nil, errors.New("dnsproxy: no upstream server")
	}
	if cfg.CacheSize < -1 || cfg.MaxInFlight < 0 || cfg.Timeout < 0 {
		return nil, fmt.Errorf("dnsproxy: cache size %d, in-flight limit %d or timeout %v out of range", cfg.CacheSize, cfg.MaxInFlight, cfg.Timeout)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	switch cfg.CacheSize {
	case 0:
		cfg.CacheSize = DefaultCacheSize
	case -1:
		cfg.CacheSize = 0
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Search = fqdns(cfg.Search)
	s := &Server{cfg: cfg, cache: newCache(cfg.CacheSize, maxCacheTTL, negativeTTL),
		inFlight: make(chan struct{}, cfg.MaxInFlight), log: cfg.Logger,
		udp: dns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: dns.MaxMsgSize},
		tcp: dns.Client{Net: "tcp", Timeout: cfg.Timeout}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.Update(snap)
	return s, nil
}

// Update answers from snap from now on.
func (s *Server) Update(snap *registry.Snapshot) {
	t := buildTable(snap, s.cfg.Namespace, s.cfg.Visible, s.cfg.TTL)
	s.table.Store(&t)
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	st := Stats{Registry: s.registry.Load(), Cached: s.cached.Load(), Forwarded: s.forwarded.Load(),
		UpstreamFailures: s.failures.Load(), TCPRetries: s.tcpRetries.Load(), Truncated: s.truncated.Load(),
		InFlightRejected: s.rejected.Load(), Malformed: s.malformed.Load(), TCPRefused: s.tcpRefused.Load(), Hosts: len(*s.table.Load())}
	st.CacheEntries, st.CacheEvictions = s.cache.stats()
	return st
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp := s.reply(req)
	if resp == nil {
		return // a response arriving as a query: answering it could make a loop
	}
	if isUDP(w) {
		s.truncateFor(req, resp)
	} else if resp.Len() > dns.MaxMsgSize {
		// A message is at most 64 KiB over TCP too; one that does not fit cannot be packed at
		// all, and the client would wait for an answer that never comes.
		resp.Truncate(dns.MaxMsgSize)
		resp.Truncated = true
		s.truncated.Add(1)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("dns: write answer", "err", err)
	}
}

func isUDP(w dns.ResponseWriter) bool { return w.LocalAddr().Network() == "udp" }

// truncateFor fits resp in the size the client's UDP query allows (512 bytes, or its EDNS0
// size), setting TC so the client asks again over TCP.
func (s *Server) truncateFor(req, resp *dns.Msg) {
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	if resp.Len() > size {
		resp.Truncate(size)
		resp.Truncated = true
		s.truncated.Add(1)
	}
}

// reply decides the answer to req; nil means send nothing.
func (s *Server) reply(req *dns.Msg) *dns.Msg {
	if req.Response {
		s.malformed.Add(1)
		return nil
	}
	resp := new(dns.Msg)
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		s.malformed.Add(1)
		resp.SetRcodeFormatError(req)
		if req.Opcode != dns.OpcodeQuery {
			resp.Rcode = dns.RcodeNotImplemented
		}
		return resp
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	// Only A and AAAA come from the registry, as in Istio: other types of a registry name
	// (PTR, SRV, TXT, ...) go upstream.
	if q.Qclass == dns.ClassINET && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) {
		if e, viaSearch := (*s.table.Load()).lookup(name, s.cfg.Search); e != nil {
			s.registry.Add(1)
			resp.SetReply(req)
			resp.Authoritative = true
			e.answer(resp, q.Name, q.Qtype, viaSearch, s.cfg.TTL)
			return withEDNS(req, resp)
		}
	}
	return s.forward(req, cacheKey{name: name, qtype: q.Qtype, class: q.Qclass, do: isDO(req), cd: req.CheckingDisabled})
}

// withEDNS echoes the client's EDNS0 OPT record, as RFC 6891 asks of a responder.
func withEDNS(req, resp *dns.Msg) *dns.Msg {
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(max(opt.UDPSize(), dns.MinMsgSize), opt.Do())
	}
	return resp
}

func isDO(m *dns.Msg) bool {
	opt := m.IsEdns0()
	return opt != nil && opt.Do()
}
