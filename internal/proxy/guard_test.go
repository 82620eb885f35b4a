package proxy

import (
	"testing"
)

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
			if g.limit.Rate != tc.wantRate || g.limit.Burst != tc.wantBurst {
				t.Fatalf("rate %v burst %v", g.limit.Rate, g.limit.Burst)
			}
		})
	}
}
