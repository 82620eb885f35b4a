package httpfwd

import (
	"context"
	"sync/atomic"
	"time"
)

// idleWatch ends an h2c exchange that made no progress for the stream idle timeout. The
// Transport sets no deadline on a response that is slow to come or a body that pauses, so
// the exchange's context is canceled instead, and fired tells the timeout from other ends.
type idleWatch struct {
	idle   time.Duration
	last   atomic.Int64 // time.Now().UnixNano() of the last progress
	fired  atomic.Bool
	done   atomic.Bool
	cancel context.CancelFunc
	timer  *time.Timer
}

// newIdleWatch starts watching; cancel ends the exchange.
func newIdleWatch(idle time.Duration, cancel context.CancelFunc) *idleWatch {
	w := &idleWatch{idle: idle, cancel: cancel}
	w.touch()
	// Made stopped and then armed, so that check never sees w.timer unset.
	w.timer = time.AfterFunc(time.Duration(1<<62), w.check)
	w.timer.Reset(idle)
	return w
}

// touch records progress: bytes moved either way.
func (w *idleWatch) touch() { w.last.Store(time.Now().UnixNano()) }

// check runs when the timer fires: it cancels the exchange if nothing moved for idle, and
// otherwise waits out the rest.
func (w *idleWatch) check() {
	if w.done.Load() {
		return
	}
	since := time.Duration(time.Now().UnixNano() - w.last.Load())
	if since < w.idle {
		w.timer.Reset(w.idle - since)
		return
	}
	w.fired.Store(true)
	w.cancel()
}

// stop ends the watch.
func (w *idleWatch) stop() {
	w.done.Store(true)
	w.timer.Stop()
}
