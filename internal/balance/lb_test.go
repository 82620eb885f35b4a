package balance

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// sequence picks n times and returns the keys picked, joined.
func sequence(t *testing.T, p *Picker, n int) string {
	t.Helper()
	keys := make([]string, n)
	for k := range keys {
		i, ok := p.Pick(nil)
		if !ok {
			t.Fatal("Pick found nothing")
		}
		keys[k] = p.targets[i].Key
	}
	return strings.Join(keys, "")
}

func TestRoundRobinRotates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		targets []Target
		eject   string
		want    string
	}{
		{name: "equal weights rotate in order", targets: []Target{{Key: "a"}, {Key: "b"}, {Key: "c"}}, want: "abcabcabc"},
		{name: "weights 5:1:1 interleave the heavy target", targets: []Target{{Key: "a", Weight: 5}, {Key: "b", Weight: 1}, {Key: "c", Weight: 1}}, want: "aabacaaaabacaa"},
		{name: "an ejected target drops out of the rotation", targets: []Target{{Key: "a"}, {Key: "b"}, {Key: "c"}}, eject: "b", want: "acacac"},
		{name: "only the best priority rotates", targets: []Target{{Key: "a", Locality: "r1/z1/s1"}, {Key: "far", Locality: "r2/z1/s1"}, {Key: "b", Locality: "r1/z1/s1"}}, want: "ababab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHealth(HealthConfig{Now: newFakeClock().Now})
			p := NewPolicyPicker(tt.targets, Client{Locality: ParseLocality("r1/z1/s1")}, h, PolicyConfig{LB: LBRoundRobin})
			if tt.eject != "" {
				eject(t, h, tt.eject)
			}
			if got := sequence(t, p, len(tt.want)); got != tt.want {
				t.Errorf("picks = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestLeastRequestAvoidsBusyTargets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		targets  []Target
		inFlight []int
		want     []float64
	}{
		// Two choices of four: the busy one wins only when drawn twice, 1/16 of the time.
		{name: "equal weights avoid a target with 10 in flight", targets: []Target{{Key: "a"}, {Key: "b"}, {Key: "c"}, {Key: "d"}}, inFlight: []int{10, 0, 0, 0}, want: []float64{0.0625, 0.3125, 0.3125, 0.3125}},
		{name: "equal weights with nothing in flight share equally", targets: []Target{{Key: "a"}, {Key: "b"}}, inFlight: []int{0, 0}, want: []float64{0.5, 0.5}},
		// weight/(active+1): 2/11 against 1.
		{name: "unequal weights are divided by active requests plus one", targets: []Target{{Key: "a", Weight: 2}, {Key: "b", Weight: 1}}, inFlight: []int{10, 0}, want: []float64{2.0 / 11 / (2.0/11 + 1), 1 / (2.0/11 + 1)}},
		{name: "unequal weights idle split by weight", targets: []Target{{Key: "a", Weight: 2}, {Key: "b", Weight: 1}}, inFlight: []int{0, 0}, want: []float64{2.0 / 3, 1.0 / 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewPolicyPicker(tt.targets, Client{}, nil, PolicyConfig{LB: LBLeastRequest})
			for i, n := range tt.inFlight {
				for range n {
					p.Begin(i)
				}
			}
			checkShares(t, shares(t, p, picks, nil), tt.want)
			for i, n := range tt.inFlight {
				for range n {
					p.End(i)
				}
				if got := p.active[i].Load(); got != 0 {
					t.Errorf("target %d has %d in flight after every End", i, got)
				}
			}
		})
	}
}

func TestPolicyFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		lb              LB
		wantPassthrough bool
		wantHashing     bool
	}{
		{name: "passthrough asks for the original destination", lb: LBPassthrough, wantPassthrough: true},
		{name: "ring hash asks for a key", lb: LBRingHash, wantHashing: true},
		{name: "maglev asks for a key", lb: LBMaglev, wantHashing: true},
		{name: "the default asks for neither", lb: LBDefault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewPolicyPicker([]Target{{Key: "a"}}, Client{}, nil, PolicyConfig{LB: tt.lb})
			if p.Policy() != tt.lb || p.LocalityMode() != LocalityDefault {
				t.Errorf("Policy, LocalityMode = %v, %v; want %v, default", p.Policy(), p.LocalityMode(), tt.lb)
			}
			if p.Passthrough() != tt.wantPassthrough || p.Hashing() != tt.wantHashing {
				t.Errorf("Passthrough, Hashing = %v, %v; want %v, %v", p.Passthrough(), p.Hashing(), tt.wantPassthrough, tt.wantHashing)
			}
			if _, ok := p.Pick(nil); !ok {
				t.Error("Pick found nothing")
			}
		})
	}
}

// targetsN returns n equally weighted targets named ep0, ep1, ...
func targetsN(n int) []Target {
	out := make([]Target, n)
	for i := range out {
		out[i] = Target{Key: fmt.Sprintf("10.0.0.%d:80", i+1)}
	}
	return out
}

// assignment maps each of keys hash keys to the key of the target PickHash gives it.
func assignment(t *testing.T, p *Picker, keys int) []string {
	t.Helper()
	out := make([]string, keys)
	for k := range out {
		i, ok := p.PickHash(HashString(fmt.Sprint("user-", k)), nil)
		if !ok {
			t.Fatal("PickHash found nothing")
		}
		out[k] = p.targets[i].Key
	}
	return out
}

func TestConsistentHashMovesFewKeys(t *testing.T) {
	t.Parallel()
	const keys = 10000
	for _, lb := range []LB{LBRingHash, LBMaglev} {
		t.Run(lb.String()+" moves about 1/N of the keys when one of ten endpoints goes", func(t *testing.T) {
			t.Parallel()
			all := targetsN(10)
			before := assignment(t, NewPolicyPicker(all, Client{}, nil, PolicyConfig{LB: lb}), keys)
			again := assignment(t, NewPolicyPicker(all, Client{}, nil, PolicyConfig{LB: lb}), keys)
			for k := range before {
				if before[k] != again[k] {
					t.Fatalf("key %d moved from %s to %s with the same endpoints", k, before[k], again[k])
				}
			}
			gone := all[3].Key
			after := assignment(t, NewPolicyPicker(append(all[:3:3], all[4:]...), Client{}, nil, PolicyConfig{LB: lb}), keys)
			moved, strays := 0, 0
			for k := range before {
				if before[k] != after[k] {
					moved++
					if before[k] != gone {
						strays++
					}
				}
			}
			frac := float64(moved) / keys
			t.Logf("%s: %.4f of %d keys moved (%d from endpoints that stayed)", lb, frac, keys, strays)
			if frac < 0.05 || frac > 0.15 {
				t.Errorf("%.4f of the keys moved, want about 0.10", frac)
			}
			if float64(strays)/keys > 0.03 {
				t.Errorf("%d keys of endpoints that stayed moved", strays)
			}
		})
	}
}

func TestConsistentHashSkipsEjectedAndHonoursWeights(t *testing.T) {
	t.Parallel()
	for _, lb := range []LB{LBRingHash, LBMaglev} {
		t.Run(lb.String()+" sends an ejected endpoint's keys elsewhere and back", func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock()
			h := NewHealth(HealthConfig{Now: clk.Now})
			p := NewPolicyPicker(targetsN(5), Client{}, h, PolicyConfig{LB: lb})
			before := assignment(t, p, 2000)
			eject(t, h, "10.0.0.2:80")
			during := assignment(t, p, 2000)
			for k := range before {
				switch {
				case during[k] == "10.0.0.2:80":
					t.Fatalf("key %d still goes to the ejected endpoint", k)
				case before[k] != "10.0.0.2:80" && during[k] != before[k]:
					t.Fatalf("key %d of a healthy endpoint moved", k)
				}
			}
			clk.Advance(31e9)
			for k, got := range assignment(t, p, 2000) {
				if got != before[k] {
					t.Fatalf("key %d did not come back to %s after the ejection", k, before[k])
				}
			}
		})
		t.Run(lb.String()+" gives a weight-3 endpoint three times the keys", func(t *testing.T) {
			t.Parallel()
			p := NewPolicyPicker([]Target{{Key: "a:1", Weight: 1}, {Key: "b:1", Weight: 3}}, Client{}, nil, PolicyConfig{LB: lb})
			n := 0
			for _, k := range assignment(t, p, 10000) {
				if k == "a:1" {
					n++
				}
			}
			if got := float64(n) / 10000; got < 0.22 || got > 0.28 {
				t.Errorf("the weight-1 endpoint got %.3f of the keys, want 0.25", got)
			}
		})
	}
}

func TestConsistentHashTableSizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     PolicyConfig
		wantMin int
		wantMax int
	}{
		{name: "the ring has at least 1024 points by default", cfg: PolicyConfig{LB: LBRingHash}, wantMin: 1024, wantMax: 2048},
		{name: "minimumRingSize 5000 makes at least 5000 points", cfg: PolicyConfig{LB: LBRingHash, RingSize: 5000}, wantMin: 5000, wantMax: 10000},
		{name: "the Maglev table has 65537 entries by default", cfg: PolicyConfig{LB: LBMaglev}, wantMin: 65537, wantMax: 65537},
		{name: "tableSize 1000 rounds up to the prime 1009", cfg: PolicyConfig{LB: LBMaglev, TableSize: 1000}, wantMin: 1009, wantMax: 1009},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewPolicyPicker(targetsN(3), Client{}, nil, tt.cfg)
			got := len(p.groups[0].ring) + len(p.groups[0].table)
			if got < tt.wantMin || got > tt.wantMax {
				t.Errorf("table has %d entries, want %d..%d", got, tt.wantMin, tt.wantMax)
			}
		})
	}
}

func TestRandomIgnoresRequestsInFlight(t *testing.T) {
	t.Parallel()
	p := NewPolicyPicker([]Target{{Key: "a", Weight: 1}, {Key: "b", Weight: 3}}, Client{}, nil, PolicyConfig{LB: LBRandom})
	for range 10 {
		p.Begin(0)
	}
	checkShares(t, shares(t, p, picks, nil), []float64{0.25, 0.75})
}

func TestPoliciesUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, lb := range []LB{LBDefault, LBRoundRobin, LBLeastRequest, LBRandom, LBRingHash, LBMaglev} {
		t.Run(lb.String()+" picks, counts and ejects from many goroutines at once", func(t *testing.T) {
			t.Parallel()
			od := &OutlierConfig{Consecutive5xx: 3, MaxEjectionPercent: 50}
			h := NewHealth(HealthConfig{Outlier: od})
			p := NewPolicyPicker(benchTargets(16), Client{Locality: ParseLocality("r1/z1/s1")}, h, PolicyConfig{LB: lb, Outlier: od})
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range 500 {
						i, ok := p.PickHash(uint64(w*1000+k), func(i int) bool { return i == w })
						if !ok {
							t.Error("no pick")
							return
						}
						p.Begin(i)
						h.Report(p.targets[i].Key, Status(200+300*(k%2)))
						p.End(i)
					}
				}()
			}
			wg.Wait()
			for i := range p.active {
				if n := p.active[i].Load(); n != 0 {
					t.Errorf("target %d has %d in flight after every End", i, n)
				}
			}
		})
	}
}

func TestNamesForExplain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "round robin reads as Istio's name", got: LBRoundRobin.String(), want: "ROUND_ROBIN"},
		{name: "least request reads as Istio's name", got: LBLeastRequest.String(), want: "LEAST_REQUEST"},
		{name: "maglev reads as Envoy's name", got: LBMaglev.String(), want: "MAGLEV"},
		{name: "the default says what it does", got: LBDefault.String(), want: "WEIGHTED_RANDOM"},
		{name: "failoverPriority reads as its field", got: LocalityLabels.String(), want: "failoverPriority"},
		{name: "distribute reads as its field", got: LocalityDistribute.String(), want: "distribute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
