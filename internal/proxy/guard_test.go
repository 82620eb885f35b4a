package proxy

import (
	"testing"
	"time"
)

func TestLogLimiterAllowsABurstThenTheRate(t *testing.T) {
	t.Parallel()
	l := logLimiter{rate: 10, burst: 20, tokens: 20}
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
				ok, n := l.allow(t0.Add(st.at))
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
	if got := l.dropped.Load(); got != 5+5+10 {
		t.Fatalf("dropped %d, want 20", got)
	}
}
