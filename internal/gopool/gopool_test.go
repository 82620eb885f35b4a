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
	st := p.Stats()
	return st.Started, st.Reused
}

// waitFull waits, up to 5 s, until at least n goroutines of p ended at its bound.
func waitFull(p *Pool, n uint64) {
	for deadline := time.Now().Add(5 * time.Second); p.Stats().Full < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
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
	waitFull(p, 5) // the other five end rather than wait
	if st := p.Stats(); st.Idle != 3 || st.Full != 5 {
		t.Fatalf("%d goroutines idle and %d ended at the bound, want 3 and 5", st.Idle, st.Full)
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
	if st := p.Stats(); st.Idle != 1 || st.LetGo != 1 {
		t.Fatalf("%d goroutines idle and %d let go after the stale one was, want 1 and 1", st.Idle, st.LetGo)
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

func TestLoweringTheBoundLetsTheExcessGo(t *testing.T) {
	p := &Pool{}
	runAtOnce(p, 6)
	waitIdle(t, p, 6)
	p.setMaxIdle(2)
	if st := p.Stats(); st.Idle != 2 || st.LetGo != 4 {
		t.Fatalf("%d goroutines idle and %d let go after lowering the bound to 2, want 2 and 4", st.Idle, st.LetGo)
	}
	runAtOnce(p, 5)
	waitIdle(t, p, 2)
	waitFull(p, 3)
	if st := p.Stats(); st.Idle != 2 || st.Full != 3 {
		t.Fatalf("%d goroutines idle and %d ended at the bound of 2, want 2 and 3", st.Idle, st.Full)
	}
	drain(p)
}
