package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/relay"
	"github.com/meshentry/meshentry/internal/sniff"
)

// handle terminates mutual TLS on c and forwards what it carries; it owns c.
func (s *Server) handle(c net.Conn) {
	defer s.conns.Done()
	defer s.open.Add(-1)
	tc := tls.Server(c, s.tls)
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.handshakeFailed(c, err)
		tc.Close()
		return
	}
	cs := tc.ConnectionState()
	peer := newPeer(c.RemoteAddr(), s.cfg.Identity.Current().ID(), cs)
	// Only the standard names say what the client speaks: an Istio client offers all of its
	// "istio-" names whatever it then sends, so those connections are sniffed like the rest.
	switch cs.NegotiatedProtocol {
	case "http/1.1":
		s.serveHTTP(tc, peer)
		return
	case "h2":
		peer.h2 = true
		s.serveHTTP(tc, peer)
		return
	}
	res, err := sniff.Sniff(tc, s.cfg.SniffTimeout, maxSniff)
	conn := res.Conn()
	if err != nil {
		s.stats.readFailures.Add(1)
		s.log.Debug("inbound connection failed before its first bytes", "remote", c.RemoteAddr().String(),
			"peer", peer.id.String(), "err", err)
		conn.Close()
		return
	}
	switch res.Kind {
	case sniff.HTTP:
		s.serveHTTP(conn, peer)
	case sniff.HTTP2:
		peer.h2 = true
		s.serveHTTP(conn, peer)
	default:
		s.pipe(conn, peer)
	}
}

// handshakeFailed counts and logs (rate-limited, since any client can cause it) a refused
// handshake, naming the identity the client presented when it had one.
func (s *Server) handshakeFailed(c net.Conn, err error) {
	var pe *identity.PeerError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		s.stats.handshakeTimeouts.Add(1)
	case errors.As(err, &pe):
		s.stats.peerRefused.Add(1)
	}
	s.stats.handshakeFailures.Add(1)
	if ok, n := s.failLog.Allow(time.Now()); ok {
		s.log.Warn("inbound TLS handshake failed", "remote", c.RemoteAddr().String(), "target", s.cfg.Target,
			"err", err, "suppressed", n)
	}
}

// serveHTTP hands the decrypted connection to the HTTP engine, which forwards each request to
// the target with the peer's x-forwarded-client-cert.
func (s *Server) serveHTTP(c net.Conn, peer *peerAddr) {
	s.stats.httpConns.Add(1)
	s.http.ServeConn(s.ctx, &peerConn{Conn: c, peer: peer})
}

// pipe copies bytes both ways between the decrypted connection and the target.
func (s *Server) pipe(c net.Conn, peer *peerAddr) {
	s.stats.tcpConns.Add(1)
	d := net.Dialer{Timeout: s.cfg.ConnectTimeout}
	up, err := d.DialContext(s.ctx, "tcp", s.cfg.Target)
	if err != nil {
		s.stats.targetConnectFailures.Add(1)
		if ok, n := s.failLog.Allow(time.Now()); ok {
			s.log.Warn("inbound target connect failed", "target", s.cfg.Target, "peer", peer.id.String(),
				"err", err, "suppressed", n)
		}
		c.Close()
		return
	}
	idle := s.cfg.TCPIdleTimeout
	if idle < 0 {
		idle = 0 // relay reads zero as never
	}
	_, _, err = relay.Pipe(s.ctx, c, up, relay.Options{IdleTimeout: idle})
	if errors.Is(err, relay.ErrIdleTimeout) {
		s.stats.tcpIdleClosed.Add(1)
	}
}
