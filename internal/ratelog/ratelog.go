// Package ratelog keeps what clients can cause at will (refusals, failed requests) from flooding
// the log: a token bucket over log lines that counts what it drops, so the next line let through,
// or a summary line, can say how many were left out.
package ratelog

import (
	"sync"
	"sync/atomic"
	"time"
)

// Limiter lets Burst lines through at once, then Rate a second. The zero value of the counters
// is ready; Rate and Burst must be set before first use and not changed afterwards.
type Limiter struct {
	// Rate is the lines allowed per second once the burst is spent; Burst the lines allowed at once.
	Rate, Burst float64

	mu      sync.Mutex
	started bool
	tokens  float64
	last    time.Time
	pending uint64
	// flushing is set while a caller's timer is due to report pending.
	flushing bool
	dropped  atomic.Uint64
}

// Allow takes a token if one is left. It reports whether a line may be written and how many were
// dropped since the last line allowed (or the last TakePending).
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		l.started, l.tokens = true, l.Burst
	} else {
		l.tokens = min(l.Burst, l.tokens+now.Sub(l.last).Seconds()*l.Rate)
	}
	l.last = now
	if l.tokens < 1 {
		l.pending++
		l.dropped.Add(1)
		return false, 0
	}
	l.tokens--
	suppressed, l.pending = l.pending, 0
	return true, suppressed
}

// StartFlush reports whether the caller should schedule a report of the lines dropped (a summary
// for a flood that stops, with no next line to carry the count): true once until TakePending.
func (l *Limiter) StartFlush() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.flushing {
		return false
	}
	l.flushing = true
	return true
}

// TakePending returns and clears the count of lines dropped since the last report.
func (l *Limiter) TakePending() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushing = false
	n := l.pending
	l.pending = 0
	return n
}

// Dropped counts every line refused since the Limiter was made.
func (l *Limiter) Dropped() uint64 { return l.dropped.Load() }
