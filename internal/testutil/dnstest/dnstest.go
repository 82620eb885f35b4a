// Package dnstest runs a real DNS server on a loopback port for tests, answering A and AAAA
// queries from records the test can change while it runs.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// Server is an authoritative-looking DNS server for the names a test gives it.
type Server struct {
	// Addr is the "127.0.0.1:port" to pass as --dns-server.
	Addr string

	mu      sync.Mutex
	records map[string]record
	queries atomic.Int64
	srv     *dns.Server
}

type record struct {
	ttl   uint32
	addrs []netip.Addr
}

// Start listens on 127.0.0.1:0 (UDP) and stops when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return StartOn(tb, pc)
}

// StartOn serves on a packet connection the caller made (for example inside a network namespace).
func StartOn(tb testing.TB, pc net.PacketConn) *Server {
	tb.Helper()
	s := &Server{Addr: pc.LocalAddr().String(), records: map[string]record{}}
	started := make(chan struct{})
	failed := make(chan error, 1)
	s.srv = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: func() { close(started) }}
	go func() { failed <- s.srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-failed:
		tb.Fatalf("dnstest: serve: %v", err)
	}
	tb.Cleanup(func() { s.srv.Shutdown() })
	return s
}

// Set answers name with addrs (IPv4 as A, IPv6 as AAAA) and the given TTL, replacing any earlier answer.
func (s *Server) Set(name string, ttl uint32, addrs ...string) {
	r := record{ttl: ttl}
	for _, a := range addrs {
		r.addrs = append(r.addrs, netip.MustParseAddr(a))
	}
	s.mu.Lock()
	s.records[dns.Fqdn(strings.ToLower(name))] = r
	s.mu.Unlock()
}

// Queries counts the questions received so far.
func (s *Server) Queries() int64 { return s.queries.Load() }

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s.mu.Lock()
	r, ok := s.records[strings.ToLower(q.Name)]
	s.mu.Unlock()
	if !ok {
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	for _, a := range r.addrs {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: r.ttl}
		switch {
		case q.Qtype == dns.TypeA && a.Is4():
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
		case q.Qtype == dns.TypeAAAA && a.Is6():
			hdr.Rrtype = dns.TypeAAAA
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	w.WriteMsg(m)
}
