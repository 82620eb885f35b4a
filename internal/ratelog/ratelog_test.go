package ratelog

import (
	"testing"
	"time"
)

func TestLimiterAllowsABurstThenTheRate(t *testing.T) {
	t.Parallel()
	l := &Limiter{Rate: 10, Burst: 20}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		name           string
		at             time.Duration
		calls          int
		wantAllowed    int
		wantSuppressed uint64 // reported by the first allowed call of the step
	}{
		{name: "allows the whole burst at once", at: 0, calls: 25, wantAllowed: 20},
		{name: "refills at ten a second and reports what it dropped", at: time.Second, calls: 15, wantAllowed: 10, wantSuppressed: 5},
		{name: "never holds more than the burst however long it was quiet", at: time.Hour, calls: 30, wantAllowed: 20, wantSuppressed: 5},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			allowed := 0
			var suppressed uint64
			for i := 0; i < st.calls; i++ {
				ok, n := l.Allow(t0.Add(st.at))
				if ok {
					if allowed == 0 {
						suppressed = n
					}
					allowed++
				}
			}
			if allowed != st.wantAllowed || suppressed != st.wantSuppressed {
				t.Fatalf("allowed %d (suppressed reported %d), want %d (%d)", allowed, suppressed, st.wantAllowed, st.wantSuppressed)
			}
		})
	}
	if got := l.Dropped(); got != 5+5+10 {
		t.Fatalf("dropped %d, want 20", got)
	}
}

func TestLimiterFlushReportsOnceUntilTaken(t *testing.T) {
	t.Parallel()
	l := &Limiter{Rate: 1, Burst: 1}
	now := time.Unix(1000, 0)
	l.Allow(now)
	for range 3 {
		if ok, _ := l.Allow(now); ok {
			t.Fatal("allowed past the burst")
		}
	}
	if !l.StartFlush() || l.StartFlush() {
		t.Fatal("StartFlush must say yes once, then no until the pending count is taken")
	}
	if n := l.TakePending(); n != 3 {
		t.Fatalf("pending %d, want 3", n)
	}
	if !l.StartFlush() {
		t.Fatal("StartFlush must say yes again after TakePending")
	}
}
