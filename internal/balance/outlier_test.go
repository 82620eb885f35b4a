package balance

import (
	"fmt"
	"testing"
	"time"
)

// play reports a list of outcomes on key and returns how many ejections they caused.
func play(h *Health, key string, outcomes ...Outcome) int {
	n := 0
	for _, o := range outcomes {
		if h.Report(key, o) {
			n++
		}
	}
	return n
}

// repeat returns n copies of o.
func repeat(o Outcome, n int) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i] = o
	}
	return out
}

func TestOutlierCountsOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		cfg         OutlierConfig
		outcomes    []Outcome
		wantEjected bool
	}{
		{name: "five 500 answers eject under consecutive5xxErrors 5", cfg: OutlierConfig{Consecutive5xx: 5}, outcomes: repeat(500, 5), wantEjected: true},
		{name: "four 500 answers do not eject under consecutive5xxErrors 5", cfg: OutlierConfig{Consecutive5xx: 5}, outcomes: repeat(500, 4)},
		{name: "a 404 answer ends a 5xx streak", cfg: OutlierConfig{Consecutive5xx: 2}, outcomes: []Outcome{500, 404, 500}},
		{name: "consecutive5xxErrors 0 turns the 5xx check off", cfg: OutlierConfig{}, outcomes: repeat(500, 50)},
		{name: "consecutiveGatewayErrors counts 502", cfg: OutlierConfig{ConsecutiveGateway: 3}, outcomes: repeat(502, 3), wantEjected: true},
		{name: "consecutiveGatewayErrors counts 503 and 504 together", cfg: OutlierConfig{ConsecutiveGateway: 2}, outcomes: []Outcome{503, 504}, wantEjected: true},
		{name: "consecutiveGatewayErrors does not count 500", cfg: OutlierConfig{ConsecutiveGateway: 3}, outcomes: repeat(500, 10)},
		{name: "a 500 ends a gateway streak", cfg: OutlierConfig{ConsecutiveGateway: 2}, outcomes: []Outcome{502, 500, 502}},
		{name: "unsplit local failures count as gateway errors", cfg: OutlierConfig{ConsecutiveGateway: 3}, outcomes: repeat(LocalFailure, 3), wantEjected: true},
		{name: "unsplit local failures count as 5xx", cfg: OutlierConfig{Consecutive5xx: 3}, outcomes: repeat(LocalFailure, 3), wantEjected: true},
		{name: "split local failures do not count as 5xx", cfg: OutlierConfig{Consecutive5xx: 3, SplitLocalOrigin: true}, outcomes: repeat(LocalFailure, 10)},
		{name: "split local failures eject at consecutiveLocalOriginFailures", cfg: OutlierConfig{SplitLocalOrigin: true, ConsecutiveLocalOrigin: 2}, outcomes: repeat(LocalFailure, 2), wantEjected: true},
		{name: "split 5xx answers still count as 5xx", cfg: OutlierConfig{SplitLocalOrigin: true, Consecutive5xx: 2}, outcomes: repeat(503, 2), wantEjected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.MaxEjectionPercent = 100
			h := NewHealth(HealthConfig{Outlier: &cfg, Now: newFakeClock().Now})
			play(h, "a", tt.outcomes...)
			if got := h.Ejected("a"); got != tt.wantEjected {
				t.Errorf("after %v Ejected = %v, want %v", tt.outcomes, got, tt.wantEjected)
			}
		})
	}
}

func TestOutlierEjectionTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  OutlierConfig
		// gap is how long after an ejection ends the next one starts.
		gap  time.Duration
		want []time.Duration // length of each successive ejection
	}{
		{name: "baseEjectionTime doubles on the second ejection and triples on the third", cfg: OutlierConfig{BaseEjectionTime: 10 * time.Second}, want: []time.Duration{10 * time.Second, 20 * time.Second, 30 * time.Second}},
		{name: "maxEjectionTime caps the growth", cfg: OutlierConfig{BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 25 * time.Second}, want: []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second}},
		{name: "the default cap is 300s", cfg: OutlierConfig{BaseEjectionTime: 200 * time.Second}, want: []time.Duration{200 * time.Second, 300 * time.Second}},
		{name: "healthy intervals after an ejection bring the multiplier down", cfg: OutlierConfig{BaseEjectionTime: 10 * time.Second, Interval: 5 * time.Second}, gap: 5 * time.Second, want: []time.Duration{10 * time.Second, 10 * time.Second}},
		{name: "an ejection ends on the interval sweep after it ran out", cfg: OutlierConfig{BaseEjectionTime: 10 * time.Second, Interval: 7 * time.Second}, want: []time.Duration{14 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock()
			cfg := tt.cfg
			cfg.Consecutive5xx, cfg.MaxEjectionPercent = 1, 100
			h := NewHealth(HealthConfig{Outlier: &cfg, Now: clk.Now})
			for n, want := range tt.want {
				if !h.Report("a", 500) {
					t.Fatalf("ejection %d did not happen", n+1)
				}
				got := measureEjection(h, clk, "a")
				if got != want {
					t.Errorf("ejection %d lasted %v, want %v", n+1, got, want)
				}
				clk.Advance(tt.gap)
			}
		})
	}
}

// measureEjection steps the clock a second at a time until key is back and returns how long that took.
func measureEjection(h *Health, clk *fakeClock, key string) time.Duration {
	var d time.Duration
	for h.Ejected(key) && d < time.Hour {
		clk.Advance(time.Second)
		d += time.Second
	}
	return d
}

func TestOutlierMaxEjectionPercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		percent    int
		hosts      int
		wantInMost int // the most endpoints that may be ejected
	}{
		{name: "10 percent of 20 endpoints ejects at most 2", percent: 10, hosts: 20, wantInMost: 2},
		{name: "50 percent of 10 endpoints ejects at most 5", percent: 50, hosts: 10, wantInMost: 5},
		{name: "10 percent of 5 endpoints ejects none, as Envoy counts (ejected+1)/hosts", percent: 10, hosts: 5, wantInMost: 0},
		{name: "100 percent ejects all", percent: 100, hosts: 4, wantInMost: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHealth(HealthConfig{Outlier: &OutlierConfig{Consecutive5xx: 1, MaxEjectionPercent: tt.percent}, Now: newFakeClock().Now})
			h.SetHosts(tt.hosts)
			ejected := 0
			for i := range tt.hosts {
				if h.Report(fmt.Sprint("ep", i), 500) {
					ejected++
				}
			}
			if ejected != tt.wantInMost {
				t.Errorf("%d of %d endpoints ejected, want %d", ejected, tt.hosts, tt.wantInMost)
			}
			if got, want := h.Refused(), uint64(tt.hosts-tt.wantInMost); got != want {
				t.Errorf("Refused = %d, want %d", got, want)
			}
		})
	}
}

func TestOutlierMinHealthPercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		minHealth int
		// wantEjectedShare is the share of picks the two ejected endpoints get together.
		wantEjectedShare float64
	}{
		{name: "minHealthPercent 0 keeps ejected endpoints out", minHealth: 0, wantEjectedShare: 0},
		{name: "minHealthPercent 50 with 50 percent healthy keeps them out", minHealth: 50, wantEjectedShare: 0},
		{name: "minHealthPercent 60 with 50 percent healthy disables ejection", minHealth: 60, wantEjectedShare: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			od := &OutlierConfig{Consecutive5xx: 1, MaxEjectionPercent: 100, MinHealthPercent: tt.minHealth}
			h := NewHealth(HealthConfig{Outlier: od, Now: newFakeClock().Now})
			targets := []Target{{Key: "a"}, {Key: "b"}, {Key: "c"}, {Key: "d"}}
			p := NewPolicyPicker(targets, Client{}, h, PolicyConfig{LB: LBRandom, Outlier: od})
			play(h, "a", 500)
			play(h, "b", 500)
			got := shares(t, p, picks, nil)
			checkShares(t, []float64{got[0] + got[1]}, []float64{tt.wantEjectedShare})
		})
	}
}

func TestOutlierStateSurvivesSetOutlier(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	h := NewHealth(HealthConfig{Outlier: &OutlierConfig{Consecutive5xx: 3, MaxEjectionPercent: 100}, Now: clk.Now})
	play(h, "a", 500, 500)
	h.SetOutlier(&OutlierConfig{Consecutive5xx: 3, MaxEjectionPercent: 100, BaseEjectionTime: time.Minute})
	if play(h, "a", 500) != 1 {
		t.Fatal("the streak did not survive a new configuration")
	}
	if got := measureEjection(h, clk, "a"); got != time.Minute {
		t.Errorf("ejection lasted %v, want the new configuration's 1m", got)
	}
	h.SetOutlier(nil)
	if play(h, "a", repeat(500, 20)...) != 0 {
		t.Error("the fixed default ejected on 5xx answers")
	}
	if play(h, "a", repeat(LocalFailure, 5)...) != 1 {
		t.Error("the fixed default did not eject after 5 connect failures")
	}
}

func TestOutlierSuccessMakesNoRecord(t *testing.T) {
	t.Parallel()
	h := NewHealth(HealthConfig{})
	for range 100 {
		h.Report("10.9.9.9:80", Success)
	}
	if h.Len() != 0 {
		t.Errorf("successes on an untracked address made %d records", h.Len())
	}
}
