package httpfwd

import (
	"context"
	"sync/atomic"
	"time"
)

// idleWatch ends an HTTP/2 exchange (an h2c upstream's, or a client's stream) that made no
// progress for the stream idle timeout. net/http sets no deadline on a response that is slow to
// come or a body that pauses, so the exchange is ended through fire instead, and fired tells the
// timeout from other ends. Touching stores a time rather than resetting a timer, since it happens
// on every read; the timer re-arms itself for the rest.
type idleWatch struct {
	idle  time.Duration
	last  atomic.Int64 // time.Now().UnixNano() of the last progress
	fired atomic.Bool
	done  atomic.Bool
	fire  func()
	timer *time.Timer
}

// newIdleWatch starts watching an exchange that cancel ends.
func newIdleWatch(idle time.Duration, cancel context.CancelFunc) *idleWatch {
	w := &idleWatch{}
	w.start(idle, cancel)
	return w
}

// start arms the watch: fire runs once nothing moved for idle.
func (w *idleWatch) start(idle time.Duration, fire func()) {
	w.idle, w.fire = idle, fire
	w.touch()
	// Made stopped and then armed, so that check never sees w.timer unset.
	w.timer = time.AfterFunc(time.Duration(1<<62), w.check)
	w.timer.Reset(idle)
}

// touch records progress: bytes moved either way.
func (w *idleWatch) touch() { w.last.Store(time.Now().UnixNano()) }

// check runs when the timer fires: it ends the exchange if nothing moved for idle, and
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
	w.fire()
}

// stop ends the watch.
func (w *idleWatch) stop() {
	w.done.Store(true)
	w.timer.Stop()
}
