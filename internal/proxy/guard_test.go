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

func TestRefusalLogLimitsComeFromConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		wantRate  float64
		wantBurst float64
	}{
		{name: "defaults to ten a second with a burst of twenty", cfg: Config{}, wantRate: 10, wantBurst: 20},
		{name: "takes the configured rate and burst", cfg: Config{RefusalLogRate: 2, RefusalLogBurst: 3}, wantRate: 2, wantBurst: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var g guard
			g.init(tc.cfg, nil)
			if g.limit.rate != tc.wantRate || g.limit.burst != tc.wantBurst || g.limit.tokens != tc.wantBurst {
				t.Fatalf("rate %v burst %v tokens %v", g.limit.rate, g.limit.burst, g.limit.tokens)
			}
		})
	}
}
