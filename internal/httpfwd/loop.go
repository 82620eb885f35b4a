package httpfwd

import "net/netip"

// LoopRoute is what the loop engine asks of the caller besides the Server's Router.
type LoopRoute interface {
	// Serves reports, without side effects, whether Router.Route answers req with a Reject
	// or with an Upstream the loop can reach: Protocol HTTP1, Actions that LoopServes (nil, or
	// retries only), no Limits, and an IP address (Addr) connected to in plaintext. false hands
	// the connection to the engine.
	// It may leave in req.RouteHint what it found, for the Router's Route that follows.
	Serves(req *RequestHead) bool
	// Addr is the address the loop connects to for up, which Route returned; false when
	// there is none (the request is then answered 503 and counted in LoopStats.Mismatches).
	Addr(up *Upstream) (netip.AddrPort, bool)
	// Check is the guard once a connect succeeded, with the socket's local address: an
	// error (wrapping ErrLoop for a connect that reached the proxy itself) fails the attempt.
	Check(remote, local netip.AddrPort) error
	// Released is called once a client connection left the loop, closed or handed off: the
	// place it held under the caller's connection cap is free.
	Released()
}

// LoopStats count what the loop engine did and each bound it hit, since NewLoopServer.
type LoopStats struct {
	Requests        uint64 // requests served on the loop, answered or failed
	Handoffs        uint64 // connections handed to the Go engine at a request the loop does not serve
	HeadTimeouts    uint64 // keep-alive request heads not complete within HeaderReadTimeout (408)
	IdleTimeouts    uint64 // keep-alive clients closed after IdleTimeout without a request
	StreamTimeouts  uint64 // exchanges ended by StreamIdleTimeout (504, or a cut response)
	ConnectTimeouts uint64 // upstream connect attempts past ConnectTimeout
	ConnectFailures uint64 // upstream connect attempts that failed otherwise
	StaleRetries    uint64 // requests sent again on a new connection after a reused one failed
	Interim         uint64 // 1xx responses relayed before a final one
	BadResponses    uint64 // upstream responses refused as malformed (502)
	PoolReused      uint64 // requests sent on an idle upstream connection of the loop's pool
	PoolFull        uint64 // upstream connections closed because their key had MaxIdlePerKey idle
	PoolIdleClosed  uint64 // idle upstream connections closed because bytes, a close or a reset arrived
	PoolIdleTimeout uint64 // idle upstream connections closed after the Pool's IdleTimeout
	PoolRetired     uint64 // upstream connections closed, idle or as they came back, as a reload took their endpoint away (Pool.Retain)
	Mismatches      uint64 // requests Serves took whose Route the loop could not reach (503)
	DrainClosed     uint64 // idle keep-alive clients closed by a drain
	Parks           uint64 // keep-alive waits begun with the request state given back (park)
}
