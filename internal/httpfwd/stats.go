package httpfwd

import "sync/atomic"

// Stats counts, since the Server started, the requests it refused or cut because a limit was
// hit. Each counter only grows.
type Stats struct {
	// HeadTooLarge counts request heads over Limits.MaxHeaderBytes (431).
	HeadTooLarge uint64
	// TooManyHeaders counts request heads (431) and request or response trailer sections
	// (aborted or cut) with more fields than Limits.MaxHeaders.
	TooManyHeaders uint64
	// LoopsDetected counts requests whose Via field already named this proxy (508).
	LoopsDetected uint64
	// StreamIdleTimeouts counts exchanges and upgraded connections ended because nothing
	// moved for Limits.StreamIdleTimeout (a 504, a cut body or a closed tunnel).
	StreamIdleTimeouts uint64
	// IdleTimeouts counts keep-alive client connections closed after Limits.IdleTimeout
	// without a request.
	IdleTimeouts uint64
	// LogsSuppressed counts error log lines dropped by the log's rate limit.
	LogsSuppressed uint64
	// UpgradesIdleClosed counts upgraded (101) connections closed because no byte moved
	// either way for Limits.StreamIdleTimeout.
	UpgradesIdleClosed uint64
	// Retries counts tries beyond the first that a route's retry policy made.
	Retries uint64
	// ReplayTooLarge counts request bodies of routes with retries or a mirror that were
	// chunked or over Limits.MaxReplayBytes, so could be sent only once.
	ReplayTooLarge uint64
	// MirrorsSent counts mirrored copies started.
	MirrorsSent uint64
	// MirrorsDropped counts copies dropped because Limits.MaxMirrors were in flight.
	MirrorsDropped uint64
	// Parked counts keep-alive waits that reached Server.IdleRelease and gave back their
	// per-request state and serving goroutine.
	Parked uint64
	// BodiesStreamed counts request bodies that had not all arrived when their head went
	// upstream, so were streamed on a goroutine of their own; the others left with the head.
	BodiesStreamed uint64
}

// counters holds the live values behind Stats.
type counters struct {
	headTooLarge   atomic.Uint64
	tooManyHeaders atomic.Uint64
	logsSuppressed atomic.Uint64
	loops          atomic.Uint64
	streamIdle     atomic.Uint64
	idle           atomic.Uint64
	upgradesIdle   atomic.Uint64
	retries        atomic.Uint64
	replayTooLarge atomic.Uint64
	mirrorsSent    atomic.Uint64
	mirrorsDropped atomic.Uint64
	parked         atomic.Uint64
	bodiesStreamed atomic.Uint64
}

// Stats returns the current counts.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		HeadTooLarge:       c.headTooLarge.Load(),
		TooManyHeaders:     c.tooManyHeaders.Load(),
		LogsSuppressed:     c.logsSuppressed.Load(),
		LoopsDetected:      c.loops.Load(),
		StreamIdleTimeouts: c.streamIdle.Load(),
		IdleTimeouts:       c.idle.Load(),
		Parked:             c.parked.Load(),
		UpgradesIdleClosed: c.upgradesIdle.Load(),
		Retries:            c.retries.Load(),
		ReplayTooLarge:     c.replayTooLarge.Load(),
		MirrorsSent:        c.mirrorsSent.Load(),
		MirrorsDropped:     c.mirrorsDropped.Load(),
		BodiesStreamed:     c.bodiesStreamed.Load(),
	}
}

// countRefusal counts a refused request head whose refusal is a limit.
func (c *counters) countRefusal(pe *parseError) {
	switch pe {
	case errHeadTooLarge:
		c.headTooLarge.Add(1)
	case errTooManyFields:
		c.tooManyHeaders.Add(1)
	}
}
