package gopool

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Only pools a test let go of may end with nothing waiting: the process's pool keeps its
	// goroutines, which is what the ignore below is for in every package that uses it.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(WaitingFunction))
}

// runAll runs n tasks one after the other on p, each waiting for the one before to be back in
// the pool, and returns the goroutine count the pool started and the tasks it reused one for.
func runAll(t *testing.T, p *Pool, n int) (started, reused uint64) {
	t.Helper()
	for range n {
		done := make(chan struct{})
		p.Go(func() { close(done) })
		<-done
		waitIdle(t, p, 1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.started, p.reused
}

// waitIdle waits until at least n goroutines wait in p.
func waitIdle(t *testing.T, p *Pool, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.Idle() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines idle, want %d", p.Idle(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTasksInSequenceShareOneGoroutine(t *testing.T) {
	p := &Pool{}
	started, reused := runAll(t, p, 50)
	if started != 1 || reused != 49 {
		t.Fatalf("started %d goroutines and reused %d, want 1 and 49", started, reused)
	}
	drain(p)
}

func TestIdleGoroutinesAreBounded(t *testing.T) {
	p := &Pool{maxIdle: 3}
	runAtOnce(p, 8)
	waitIdle(t, p, 3)
	time.Sleep(20 * time.Millisecond) // the other five end rather than wait
	if got := p.Idle(); got != 3 {
		t.Fatalf("%d goroutines idle, want the bound of 3", got)
	}
	drain(p)
}

func TestALongIdleGoroutineIsLetGo(t *testing.T) {
	p := &Pool{idleTimeout: 20 * time.Millisecond}
	runAtOnce(p, 2)
	waitIdle(t, p, 2)
	time.Sleep(40 * time.Millisecond)
	// This task takes the newest idle goroutine and lets the stale one go.
	done := make(chan struct{})
	p.Go(func() { close(done) })
	<-done
	waitIdle(t, p, 1)
	time.Sleep(20 * time.Millisecond)
	if got := p.Idle(); got != 1 {
		t.Fatalf("%d goroutines idle after the stale one was let go, want 1", got)
	}
	drain(p)
}

// runAtOnce runs n tasks on p that are all running at the same time before any ends, so that
// each takes a goroutine of its own.
func runAtOnce(p *Pool, n int) {
	var release, running sync.WaitGroup
	release.Add(1)
	for range n {
		running.Add(1)
		p.Go(func() { running.Done(); release.Wait() })
	}
	running.Wait()
	release.Done()
}

// drain lets every idle goroutine of p go, so that goleak sees the test's own pools end.
func drain(p *Pool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, w := range idle {
		w.tasks <- nil
	}
}
