package proxy

import "sync/atomic"

// Stats is a snapshot of the proxy's counters since it started, for the admin API and metrics.
type Stats struct {
	// RefusedAtCap counts downstream connections closed at once because MaxConnections were open.
	RefusedAtCap uint64
	// IdleClosed counts CONNECT tunnels and captured TCP/TLS pipes closed by TCPIdleTimeout.
	IdleClosed uint64
	// HealthEvicted counts health records dropped or not made because the tracker was full.
	HealthEvicted uint64
	// TLSHandshakeFailures counts upstream TLS handshakes that failed: a server refused by its
	// certificate, a client certificate refused, a handshake that timed out.
	TLSHandshakeFailures uint64
	// PoolOverflows counts requests and connections a DestinationRule's connectionPool limit
	// refused (Envoy's upstream_rq_pending_overflow and upstream_cx_overflow, summed).
	PoolOverflows uint64
	// RouteRetries counts tries beyond the first that VirtualService retry policies made.
	RouteRetries uint64
	// RetryBodyTooLarge counts request bodies of routes with retries or a mirror that were
	// chunked or over HTTP.MaxReplayBytes, so could be sent only once.
	RetryBodyTooLarge uint64
	// MirrorsSent counts mirrored copies started; MirrorsDropped those dropped because
	// HTTP.MaxMirrors were in flight.
	MirrorsSent, MirrorsDropped uint64
	// Parked counts keep-alive client connections that idled long enough to give back their
	// per-request state and goroutine; BodiesStreamed request bodies streamed on a goroutine
	// of their own because they had not all arrived with their head.
	Parked, BodiesStreamed uint64
	// PoolIdleFull counts reusable upstream connections closed because their upstream already
	// held its idle limit.
	PoolIdleFull uint64
}

// counters are the live counters behind Stats; each is bumped where its event happens.
type counters struct {
	refusedAtCap atomic.Uint64
	idleClosed   atomic.Uint64

	tlsHandshakeFailures atomic.Uint64
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	fw, cp := p.forward.Stats(), p.capture.Stats()
	return Stats{
		RouteRetries:         fw.Retries + cp.Retries,
		RetryBodyTooLarge:    fw.ReplayTooLarge + cp.ReplayTooLarge,
		MirrorsSent:          fw.MirrorsSent + cp.MirrorsSent,
		MirrorsDropped:       fw.MirrorsDropped + cp.MirrorsDropped,
		Parked:               fw.Parked + cp.Parked,
		BodiesStreamed:       fw.BodiesStreamed + cp.BodiesStreamed,
		PoolIdleFull:         p.pool.IdleFull(),
		RefusedAtCap:         p.stats.refusedAtCap.Load(),
		IdleClosed:           p.stats.idleClosed.Load(),
		HealthEvicted:        p.health.Evicted(),
		TLSHandshakeFailures: p.stats.tlsHandshakeFailures.Load(),
		PoolOverflows:        p.dr.limits.overflows(),
	}
}
