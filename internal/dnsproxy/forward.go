package dnsproxy

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
)

// forward answers req from the cache or the upstream servers, asked in turn until one answers;
// SERVFAIL when none does or too many queries are already waiting.
func (s *Server) forward(req *dns.Msg, k cacheKey) *dns.Msg {
	now := s.cfg.Now()
	if m := s.cache.get(k, now); m != nil {
		s.cached.Add(1)
		m.Id = req.Id
		// The cache is keyed by the lower-cased name; the question echoed is the asker's own
		// spelling, which resolvers such as musl's compare byte for byte.
		m.Question = append(m.Question[:0], req.Question...)
		return withEDNS(req, m)
	}
	select {
	case s.inFlight <- struct{}{}:
		defer func() { <-s.inFlight }()
	default:
		s.rejected.Add(1)
		return servfail(req)
	}
	s.forwarded.Add(1)
	// The upstream is asked for the largest answer UDP allows, whatever the client's size; the
	// answer is fitted to the client's size on the way out.
	up := req.Copy()
	up.Id = dns.Id()
	if opt := up.IsEdns0(); opt != nil {
		opt.SetUDPSize(dns.DefaultMsgSize)
	} else {
		up.SetEdns0(dns.DefaultMsgSize, false)
	}
	var errs []error
	for _, server := range s.cfg.Upstreams {
		m, err := s.exchange(up, server)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.Id = req.Id
		// The upstream's OPT answered ours, not the client's: it is neither cached, where it
		// would reach askers without EDNS0 or with other options, nor passed on; the client's
		// own is echoed instead.
		stripOPT(m)
		s.cache.put(k, m, now)
		return withEDNS(req, m)
	}
	s.failures.Add(1)
	s.log.Warn("dns: no upstream answered", "name", k.name, "type", dns.TypeToString[k.qtype], "err", errors.Join(errs...))
	return servfail(req)
}

// exchange asks one server over UDP, and again over TCP when the UDP answer is truncated.
func (s *Server) exchange(m *dns.Msg, server string) (*dns.Msg, error) {
	r, _, err := s.udp.Exchange(m, server)
	if err == nil && r.Truncated {
		s.tcpRetries.Add(1)
		r, _, err = s.tcp.Exchange(m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", server, err)
	}
	if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
		return nil, fmt.Errorf("ask %s: %s", server, dns.RcodeToString[r.Rcode])
	}
	return r, nil
}

func stripOPT(m *dns.Msg) {
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
}

func servfail(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	return m
}
