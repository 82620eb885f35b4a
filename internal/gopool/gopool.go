// Package gopool runs short tasks, such as serving one accepted connection, on goroutines that
// outlive them. A fresh goroutine starts on the runtime's small stack and copies it each time a
// proxied connection's calls go deeper (a few percent of the CPU a new connection costs); a
// pooled one starts the next task on the stack the last task grew, until a garbage collection
// shrinks it. Idle goroutines are bounded in number, and let go once they waited too long.
package gopool

import (
	"sync"
	"time"
)

const (
	// MaxIdle bounds the goroutines waiting for a task; beyond it a finished one ends. It need
	// only cover the connections that begin at once, not those open: an idle goroutine holds
	// the stack its last task grew (~14 KiB) until a collection shrinks it.
	MaxIdle = 128
	// IdleTimeout is how long a goroutine may wait for a task before the pool lets it go. It
	// is checked as a task is handed over, so with no traffic at all the idle ones (at most
	// MaxIdle) stay, their stacks shrunk by the next collections.
	IdleTimeout = 10 * time.Second
)

// pool is the process's one pool: listeners and relays share its warm stacks.
var pool = &Pool{}

// Go runs task on an idle goroutine of the process's pool, or on a new one.
func Go(task func()) { pool.Go(task) }

// Pool is a set of goroutines waiting for tasks; its zero value is ready.
type Pool struct {
	mu sync.Mutex
	// idle holds the waiting goroutines, the longest waiting first: Go takes the last, whose
	// stack is the most likely to be still grown, and lets the first go once it waited too long.
	idle []*worker
	// started and reused count goroutines begun and tasks run by a waiting one; full counts
	// goroutines that ended because maxIdle were waiting already, letGo those let go idle.
	started, reused, full, letGo uint64
	// maxIdle and idleTimeout, when set, stand for MaxIdle (SetMaxIdle) and IdleTimeout (tests).
	maxIdle     int
	idleTimeout time.Duration
}

type worker struct {
	tasks chan func()
	since time.Time
}

// Go runs task on an idle goroutine, or on a new one when none is waiting.
func (p *Pool) Go(task func()) {
	p.mu.Lock()
	n := len(p.idle)
	if n == 0 {
		p.started++
		p.mu.Unlock()
		go p.work(task)
		return
	}
	w := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	p.reused++
	var stale *worker
	if len(p.idle) > 0 && time.Since(p.idle[0].since) > p.timeout() {
		stale = p.idle[0]
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		p.letGo++
	}
	p.mu.Unlock()
	w.tasks <- task
	if stale != nil {
		stale.tasks <- nil
	}
}

// work runs tasks until the pool has no room for it or lets it go (a nil task).
func (p *Pool) work(task func()) {
	w := &worker{tasks: make(chan func(), 1)}
	for task != nil {
		task()
		task = nil
		if !p.park(w) {
			return
		}
		task = <-w.tasks
	}
}

// park puts w among the idle goroutines, unless MaxIdle are waiting already.
func (p *Pool) park(w *worker) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= p.limit() {
		p.full++
		return false
	}
	w.since = now
	p.idle = append(p.idle, w)
	return true
}

// SetMaxIdle sets the bound of the process's pool (0: MaxIdle), letting go at once the
// longest waiting goroutines beyond it.
func SetMaxIdle(n int) { pool.setMaxIdle(n) }

func (p *Pool) setMaxIdle(n int) {
	p.mu.Lock()
	p.maxIdle = max(n, 0)
	var excess []*worker
	if over := len(p.idle) - p.limit(); over > 0 {
		excess = append(excess, p.idle[:over]...)
		p.idle = append(p.idle[:0], p.idle[over:]...)
		p.letGo += uint64(over)
	}
	p.mu.Unlock()
	for _, w := range excess {
		w.tasks <- nil
	}
}

// Stats counts what a pool did since it was made.
type Stats struct {
	// Started are goroutines begun; Reused tasks run by a waiting one.
	Started, Reused uint64
	// Full are goroutines that ended at the end of a task because the bound were waiting.
	Full uint64
	// LetGo are goroutines let go after waiting longer than IdleTimeout.
	LetGo uint64
	// Idle are the goroutines waiting now.
	Idle int
}

// ProcessStats returns the process's pool's counters.
func ProcessStats() Stats { return pool.Stats() }

// Stats returns the pool's counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Started: p.started, Reused: p.reused, Full: p.full, LetGo: p.letGo, Idle: len(p.idle)}
}

// Idle returns the goroutines waiting for a task now.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func (p *Pool) limit() int {
	if p.maxIdle > 0 {
		return p.maxIdle
	}
	return MaxIdle
}

func (p *Pool) timeout() time.Duration {
	if p.idleTimeout > 0 {
		return p.idleTimeout
	}
	return IdleTimeout
}

// WaitingFunction is the function an idle goroutine of a pool waits in, for leak checks
// (goleak.IgnoreTopFunction) of packages whose tests leave the process's pool holding some.
const WaitingFunction = "github.com/meshentry/meshentry/internal/gopool.(*Pool).work"
