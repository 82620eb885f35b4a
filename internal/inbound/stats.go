package inbound

import (
	"sync/atomic"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

// Stats counts, since the Server started, what its listeners did. Each counter only grows,
// except Open.
type Stats struct {
	// Accepted counts connections taken under the cap.
	Accepted uint64
	// Open is the connections open now.
	Open int64
	// RefusedAtCap counts connections closed when accepted because MaxConnections were open.
	RefusedAtCap uint64
	// HandshakeFailures counts TLS handshakes that failed for any reason.
	HandshakeFailures uint64
	// HandshakeTimeouts counts, among them, handshakes cut by HandshakeTimeout.
	HandshakeTimeouts uint64
	// PeerRefused counts, among them, clients whose certificate did not verify against the trust
	// bundle (unknown CA, expired) or whose SPIFFE ID was not allowed.
	PeerRefused uint64
	// ReadFailures counts connections that failed after the handshake, before their first bytes.
	ReadFailures uint64
	// HTTPConns and TCPConns count connections forwarded per request and piped as bytes.
	HTTPConns, TCPConns uint64
	// TargetConnectFailures counts piped connections whose target could not be reached; HTTP
	// requests that could not reach it are answered 503 by the engine.
	TargetConnectFailures uint64
	// TCPIdleClosed counts piped connections closed after TCPIdleTimeout without a byte.
	TCPIdleClosed uint64
	// HTTP is the engine's own counters for the HTTP side.
	HTTP httpfwd.Stats
}

// counters holds the live values behind Stats.
type counters struct {
	accepted, refusedAtCap                            atomic.Uint64
	handshakeFailures, handshakeTimeouts, peerRefused atomic.Uint64
	readFailures, httpConns, tcpConns                 atomic.Uint64
	targetConnectFailures, tcpIdleClosed              atomic.Uint64
}

// Stats returns the current counts.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Accepted: c.accepted.Load(), Open: s.open.Load(), RefusedAtCap: c.refusedAtCap.Load(),
		HandshakeFailures: c.handshakeFailures.Load(), HandshakeTimeouts: c.handshakeTimeouts.Load(),
		PeerRefused: c.peerRefused.Load(), ReadFailures: c.readFailures.Load(),
		HTTPConns: c.httpConns.Load(), TCPConns: c.tcpConns.Load(),
		TargetConnectFailures: c.targetConnectFailures.Load(), TCPIdleClosed: c.tcpIdleClosed.Load(),
		HTTP: s.http.Stats(),
	}
}
