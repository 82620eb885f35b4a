package source

import "time"

// settle proves current, from Run's loop, the files a compile read too soon after they were
// written for a stat to prove them later (config.Cache.Settle), so that the next look and
// reload take them on a stat rather than read and hash every one again: files a generator or
// a ConfigMap update wrote just before `meshentry run` started are all such. It runs in the
// loop, not on a goroutine of its own, so never beside a compile, and it ends with Run. Run
// calls it at once after each compile (a compile sets compiled), and again when the files it
// could not settle yet have aged past the margin.
func (w *Watcher) settle(timer *time.Timer) {
	if next := w.cache.Files.Settle(time.Now()); next > 0 {
		timer.Reset(next)
	}
}

// stoppedTimer returns a timer that fires only once Reset.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
