package balance

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

const picks = 20000

// shares picks n times and returns each target's fraction of the picks.
func shares(t *testing.T, p *Picker, n int, exclude func(int) bool) []float64 {
	t.Helper()
	counts := make([]int, len(p.targets))
	for range n {
		i, ok := p.Pick(exclude)
		if !ok {
			t.Fatal("Pick found nothing")
		}
		counts[i]++
	}
	out := make([]float64, len(counts))
	for i, c := range counts {
		out[i] = float64(c) / float64(n)
	}
	return out
}

// checkShares fails when a share is more than 2 points off the wanted one.
func checkShares(t *testing.T, got, want []float64) {
	t.Helper()
	for i := range want {
		if math.Abs(got[i]-want[i]) > 0.02 {
			t.Errorf("target %d got %.3f of the picks, want %.3f (all: %.3f)", i, got[i], want[i], got)
		}
	}
}

// eject reports enough failures on key to eject it under the default threshold.
func eject(t *testing.T, h *Health, key string) {
	t.Helper()
	for range 5 {
		h.ReportFailure(key)
	}
	if !h.Ejected(key) {
		t.Fatalf("%s was not ejected", key)
	}
}

func TestPickRespectsWeights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		targets []Target
		want    []float64
	}{
		{
			name:    "equal weights share equally",
			targets: []Target{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "c", Weight: 1}, {Key: "d", Weight: 1}},
			want:    []float64{0.25, 0.25, 0.25, 0.25},
		},
		{
			name:    "unequal weights share proportionally",
			targets: []Target{{Key: "a", Weight: 1}, {Key: "b", Weight: 2}, {Key: "c", Weight: 3}, {Key: "d", Weight: 4}},
			want:    []float64{0.1, 0.2, 0.3, 0.4},
		},
		{
			name:    "a zero weight counts as one",
			targets: []Target{{Key: "a", Weight: 0}, {Key: "b", Weight: 1}, {Key: "c", Weight: 2}},
			want:    []float64{0.25, 0.25, 0.5},
		},
		{
			name:    "a single target takes everything",
			targets: []Target{{Key: "a", Weight: 7}},
			want:    []float64{1},
		},
		{
			name:    "large weights do not overflow",
			targets: []Target{{Key: "a", Weight: math.MaxUint32}, {Key: "b", Weight: math.MaxUint32}},
			want:    []float64{0.5, 0.5},
		},
		{
			name: "only the best priority gets traffic, split by its weights",
			targets: []Target{
				{Key: "far", Weight: 100, Locality: "r2/z1/s1"},
				{Key: "near-1", Weight: 1, Locality: "r1/z1/s1"},
				{Key: "zone", Weight: 100, Locality: "r1/z1/s2"},
				{Key: "near-3", Weight: 3, Locality: "r1/z1/s1"},
			},
			want: []float64{0, 0.25, 0, 0.75},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHealth(HealthConfig{})
			p := NewPicker(tt.targets, ParseLocality("r1/z1/s1"), "", h)
			checkShares(t, shares(t, p, picks, nil), tt.want)
		})
	}
}

func TestPickFailsOverAndBack(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	h := NewHealth(HealthConfig{Now: clk.Now})
	targets := []Target{
		{Key: "p0-a", Weight: 1, Locality: "r1/z1/s1"},
		{Key: "p0-b", Weight: 1, Locality: "r1/z1/s1"},
		{Key: "p1-a", Weight: 1, Locality: "r1/z1/s2"},
		{Key: "p1-b", Weight: 3, Locality: "r1/z1/s3"},
		{Key: "p3", Weight: 1, Locality: "r2/z1/s1"},
	}
	p := NewPicker(targets, ParseLocality("r1/z1/s1"), "", h)

	steps := []struct {
		name    string
		do      func()
		want    []float64
		exclude func(int) bool
	}{
		{name: "healthy priority 0 takes all traffic", do: func() {}, want: []float64{0.5, 0.5, 0, 0, 0}},
		{name: "one ejected priority 0 target leaves the other with all of it", do: func() { eject(t, h, "p0-a") }, want: []float64{0, 1, 0, 0, 0}},
		{name: "with priority 0 all ejected traffic moves to priority 1 by weight", do: func() { eject(t, h, "p0-b") }, want: []float64{0, 0, 0.25, 0.75, 0}},
		{name: "a Picker built from a new snapshot sees the same ejections", do: func() { p = NewPicker(targets, ParseLocality("r1/z1/s1"), "", h) }, want: []float64{0, 0, 0.25, 0.75, 0}},
		{name: "excluding priority 1 as well moves traffic to priority 3", do: func() {}, exclude: func(i int) bool { return i == 2 || i == 3 }, want: []float64{0, 0, 0, 0, 1}},
		{name: "before 30s the ejection still holds", do: func() { clk.Advance(29 * time.Second) }, want: []float64{0, 0, 0.25, 0.75, 0}},
		{name: "after 30s traffic returns to priority 0", do: func() { clk.Advance(time.Second) }, want: []float64{0.5, 0.5, 0, 0, 0}},
	}
	for _, st := range steps {
		st.do()
		t.Run(st.name, func(t *testing.T) {
			checkShares(t, shares(t, p, picks, st.exclude), st.want)
		})
	}
}

func TestPickExclude(t *testing.T) {
	t.Parallel()
	targets := []Target{
		{Key: "a", Weight: 1, Locality: "r/z/s"},
		{Key: "b", Weight: 1, Locality: "r/z/s"},
		{Key: "c", Weight: 2, Locality: "r/z/s"},
		{Key: "d", Weight: 1, Locality: "r/z2"},
	}
	tests := []struct {
		name    string
		exclude func(int) bool
		want    []float64
		wantOK  bool
	}{
		{name: "a nil exclude excludes nothing", exclude: nil, want: []float64{0.25, 0.25, 0.5, 0}, wantOK: true},
		{name: "an excluded target is never picked and the rest keep their proportions", exclude: func(i int) bool { return i == 2 }, want: []float64{0.5, 0.5, 0, 0}, wantOK: true},
		{name: "excluding all of priority 0 moves to the next priority", exclude: func(i int) bool { return i < 3 }, want: []float64{0, 0, 0, 1}, wantOK: true},
		{name: "excluding everything finds nothing", exclude: func(int) bool { return true }, wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewPicker(targets, ParseLocality("r/z/s"), "", NewHealth(HealthConfig{}))
			if !tt.wantOK {
				if i, ok := p.Pick(tt.exclude); ok {
					t.Fatalf("Pick = %d, true; want nothing", i)
				}
				return
			}
			checkShares(t, shares(t, p, picks, tt.exclude), tt.want)
		})
	}
}

func TestPickRetriesTheNextEndpoint(t *testing.T) {
	t.Parallel()
	targets := []Target{{Key: "a"}, {Key: "b"}, {Key: "c"}}
	p := NewPicker(targets, Locality{}, "", nil)
	var tried [3]bool
	for n := range len(targets) {
		i, ok := p.Pick(func(i int) bool { return tried[i] })
		if !ok {
			t.Fatalf("attempt %d found nothing", n+1)
		}
		if tried[i] {
			t.Fatalf("attempt %d picked %d again", n+1, i)
		}
		tried[i] = true
	}
	if i, ok := p.Pick(func(i int) bool { return tried[i] }); ok {
		t.Errorf("after trying all, Pick = %d, true", i)
	}
}

func TestPickWhenEverythingIsEjected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		targets []Target
		eject   []string
		exclude func(int) bool
		want    []float64
	}{
		{
			name:    "picks among the ejected targets by weight rather than failing",
			targets: []Target{{Key: "a", Weight: 1}, {Key: "b", Weight: 3}},
			eject:   []string{"a", "b"},
			want:    []float64{0.25, 0.75},
		},
		{
			name: "keeps the locality preference among ejected targets",
			targets: []Target{
				{Key: "far", Weight: 1, Locality: "r2"},
				{Key: "near", Weight: 1, Locality: "r1/z1/s1"},
			},
			eject: []string{"far", "near"},
			want:  []float64{0, 1},
		},
		{
			name:    "falls back to ejected targets that are not excluded",
			targets: []Target{{Key: "a", Weight: 1}, {Key: "b", Weight: 1}, {Key: "c", Weight: 1}},
			eject:   []string{"b", "c"},
			exclude: func(i int) bool { return i == 0 },
			want:    []float64{0, 0.5, 0.5},
		},
		{
			name: "prefers a healthy far target to an ejected near one",
			targets: []Target{
				{Key: "far", Weight: 1, Locality: "r2"},
				{Key: "near", Weight: 1, Locality: "r1/z1/s1"},
			},
			eject: []string{"near"},
			want:  []float64{1, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHealth(HealthConfig{})
			for _, key := range tt.eject {
				eject(t, h, key)
			}
			p := NewPicker(tt.targets, ParseLocality("r1/z1/s1"), "", h)
			checkShares(t, shares(t, p, picks, tt.exclude), tt.want)
		})
	}
}

func TestPickPrefersTheProxyNetwork(t *testing.T) {
	t.Parallel()
	targets := []Target{
		{Key: "other-net-same-zone", Locality: "r1/z1/s1", Network: "n2"},
		{Key: "same-net-other-region", Locality: "r9", Network: "n1"},
	}
	h := NewHealth(HealthConfig{})
	p := NewPicker(targets, ParseLocality("r1/z1/s1"), "n1", h)
	t.Run("a same-network endpoint in another region beats another network in the same zone", func(t *testing.T) {
		checkShares(t, shares(t, p, picks, nil), []float64{0, 1})
	})
	t.Run("another network is used when the proxy's network has nothing healthy", func(t *testing.T) {
		eject(t, h, "same-net-other-region")
		checkShares(t, shares(t, p, picks, nil), []float64{1, 0})
	})
}

func TestPickWithoutTargets(t *testing.T) {
	t.Parallel()
	p := NewPicker(nil, ParseLocality("r/z/s"), "", NewHealth(HealthConfig{}))
	if i, ok := p.Pick(nil); ok || i != -1 {
		t.Errorf("Pick on no targets = %d, %v; want -1, false", i, ok)
	}
	if got := p.Explain(); len(got) != 0 {
		t.Errorf("Explain on no targets = %v", got)
	}
}

func TestPickWithoutHealth(t *testing.T) {
	t.Parallel()
	p := NewPicker([]Target{{Key: "a", Locality: "r1"}, {Key: "b", Locality: "r2"}}, ParseLocality("r1"), "", nil)
	checkShares(t, shares(t, p, picks, func(i int) bool { return false }), []float64{1, 0})
	if got := p.Explain(); got[0].Ejected || !got[0].Active {
		t.Errorf("Explain without health = %+v", got[0])
	}
}

func TestNewPickerCopiesTargets(t *testing.T) {
	t.Parallel()
	targets := []Target{{Key: "a"}}
	p := NewPicker(targets, Locality{}, "", nil)
	targets[0].Key = "changed"
	if got := p.Explain()[0].Key; got != "a" {
		t.Errorf("Explain shows %q after the caller changed its slice", got)
	}
}

func TestPickDoesNotAllocate(t *testing.T) {
	targets := benchTargets(8)
	tests := []struct {
		name  string
		setup func(h *Health)
		// exclude is built inside the measured function, as a caller would.
		withExclude bool
	}{
		{name: "with everything healthy"},
		{name: "with an exclude closure", withExclude: true},
		{name: "with one target ejected", setup: func(h *Health) { eject(t, h, targets[0].Key) }},
		{name: "with every target ejected", setup: func(h *Health) {
			for _, tg := range targets {
				eject(t, h, tg.Key)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHealth(HealthConfig{})
			if tt.setup != nil {
				tt.setup(h)
			}
			p := NewPicker(targets, ParseLocality("r1/z1/s1"), "", h)
			skip := 3
			n := testing.AllocsPerRun(1000, func() {
				if tt.withExclude {
					p.Pick(func(i int) bool { return i == skip })
				} else {
					p.Pick(nil)
				}
			})
			if n != 0 {
				t.Errorf("Pick allocates %v times", n)
			}
		})
	}
}

func TestPickIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	h := NewHealth(HealthConfig{ConsecutiveFailures: 2, EjectFor: time.Second, Now: clk.Now})
	targets := benchTargets(6)
	p := NewPicker(targets, ParseLocality("r1/z1/s1"), "", h)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 3000 {
				i, ok := p.Pick(func(i int) bool { return i == g%len(targets) })
				if !ok {
					t.Error("Pick found nothing")
					return
				}
				switch n % 5 {
				case 0:
					h.ReportSuccess(targets[i].Key)
				case 1:
					clk.Advance(50 * time.Millisecond)
				default:
					h.ReportFailure(targets[i].Key)
				}
				if n%100 == 0 {
					p.Explain()
				}
			}
		})
	}
	wg.Wait()
}

// benchTargets spreads n targets over three priorities with varied weights.
func benchTargets(n int) []Target {
	localities := []string{"r1/z1/s1", "r1/z1/s2", "r1/z2/s1"}
	targets := make([]Target, n)
	for i := range targets {
		targets[i] = Target{
			Key:      fmt.Sprintf("10.0.%d.%d:8080", i/256, i%256),
			Weight:   uint32(1 + i%4),
			Locality: localities[i%len(localities)],
		}
	}
	return targets
}

func BenchmarkPick(b *testing.B) {
	benches := []struct {
		name    string
		n       int
		ejected int
		exclude bool
	}{
		{name: "8 targets healthy", n: 8},
		{name: "8 targets with exclude", n: 8, exclude: true},
		{name: "8 targets one ejected", n: 8, ejected: 1},
		{name: "8 targets all ejected", n: 8, ejected: 8},
		{name: "1000 targets healthy", n: 1000},
		{name: "1000 targets one ejected", n: 1000, ejected: 1},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			targets := benchTargets(bb.n)
			h := NewHealth(HealthConfig{})
			for _, tg := range targets[:bb.ejected] {
				for range 5 {
					h.ReportFailure(tg.Key)
				}
			}
			p := NewPicker(targets, ParseLocality("r1/z1/s1"), "", h)
			var exclude func(int) bool
			if bb.exclude {
				exclude = func(i int) bool { return i == 0 }
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.Pick(exclude)
				}
			})
		})
	}
}
