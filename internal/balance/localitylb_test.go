package balance

import (
	"testing"
)

func TestLocalityModes(t *testing.T) {
	t.Parallel()
	five := []Target{
		{Key: "same", Locality: "us-east/z1/s1"},
		{Key: "zone", Locality: "us-east/z1/s2"},
		{Key: "region", Locality: "us-east/z2/s1"},
		{Key: "eu", Locality: "eu-west/z1/s1"},
		{Key: "ap", Locality: "ap-south/z1/s1"},
	}
	east := ParseLocality("us-east/z1/s1")
	tests := []struct {
		name    string
		targets []Target
		client  Client
		cfg     LocalityConfig
		// wantOrder is the keys by priority, one string per priority ("a b" shares one).
		wantOrder []string
	}{
		{
			name: "failover ranks subzone, zone, region, then the failover region before the rest", targets: five, client: Client{Locality: east},
			cfg:       LocalityConfig{Mode: LocalityFailover, Failover: []RegionFailover{{From: "us-east", To: "ap-south"}}},
			wantOrder: []string{"same", "zone", "region", "ap", "eu"},
		},
		{
			name: "failover without an entry for the proxy's region puts other regions together", targets: five, client: Client{Locality: east},
			cfg:       LocalityConfig{Mode: LocalityFailover, Failover: []RegionFailover{{From: "eu-west", To: "ap-south"}}},
			wantOrder: []string{"same", "zone", "region", "eu ap"},
		},
		{
			name: "enabled false puts everything at one priority", targets: five, client: Client{Locality: east},
			cfg:       LocalityConfig{Mode: LocalityOff},
			wantOrder: []string{"same zone region eu ap"},
		},
		{
			name: "failoverPriority ranks by the number of leading labels matched",
			targets: []Target{
				{Key: "none", Labels: map[string]string{"version": "v2", "cluster": "a"}},
				{Key: "both", Labels: map[string]string{"version": "v1", "cluster": "a"}},
				{Key: "first", Labels: map[string]string{"version": "v1", "cluster": "b"}},
			},
			client:    Client{Labels: map[string]string{"version": "v1", "cluster": "a"}},
			cfg:       LocalityConfig{Mode: LocalityLabels, Labels: []string{"version", "cluster"}},
			wantOrder: []string{"both", "first", "none"},
		},
		{
			name: "failoverPriority counts a label only after every label before it matched",
			targets: []Target{
				{Key: "second-only", Labels: map[string]string{"version": "v2", "cluster": "a"}},
				{Key: "first-only", Labels: map[string]string{"version": "v1", "cluster": "b"}},
			},
			client:    Client{Labels: map[string]string{"version": "v1", "cluster": "a"}},
			cfg:       LocalityConfig{Mode: LocalityLabels, Labels: []string{"version", "cluster"}},
			wantOrder: []string{"first-only", "second-only"},
		},
		{
			name: "failoverPriority key=value compares with the value and reads topology from the locality",
			targets: []Target{
				{Key: "eu-v1", Locality: "eu-west/z1", Labels: map[string]string{"version": "v1"}},
				{Key: "east-v1", Locality: "us-east/z9", Labels: map[string]string{"version": "v1"}},
				{Key: "east-v2", Locality: "us-east/z1", Labels: map[string]string{"version": "v2"}},
			},
			client:    Client{Locality: east, Labels: map[string]string{"version": "v2"}},
			cfg:       LocalityConfig{Mode: LocalityLabels, Labels: []string{"version=v1", "topology.kubernetes.io/region"}},
			wantOrder: []string{"east-v1", "eu-v1", "east-v2"},
		},
		{
			name: "failoverPriority with failover orders each label level by region",
			targets: []Target{
				{Key: "v2-east", Locality: "us-east/z1", Labels: map[string]string{"version": "v2"}},
				{Key: "v1-ap", Locality: "ap-south/z1", Labels: map[string]string{"version": "v1"}},
				{Key: "v1-eu", Locality: "eu-west/z1", Labels: map[string]string{"version": "v1"}},
				{Key: "v1-east", Locality: "us-east/z1", Labels: map[string]string{"version": "v1"}},
			},
			client:    Client{Locality: ParseLocality("us-east/z1"), Labels: map[string]string{"version": "v1"}},
			cfg:       LocalityConfig{Mode: LocalityLabels, Labels: []string{"version"}, Failover: []RegionFailover{{From: "us-east", To: "eu-west"}}},
			wantOrder: []string{"v1-east", "v1-eu", "v1-ap", "v2-east"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := NewPolicyPicker(tt.targets, tt.client, nil, PolicyConfig{Locality: tt.cfg})
			var got []string
			for _, g := range p.groups {
				s := ""
				for k, i := range g.members {
					if k > 0 {
						s += " "
					}
					s += tt.targets[i].Key
				}
				got = append(got, s)
			}
			if len(got) != len(tt.wantOrder) {
				t.Fatalf("priorities = %q, want %q", got, tt.wantOrder)
			}
			for k := range got {
				if got[k] != tt.wantOrder[k] {
					t.Fatalf("priorities = %q, want %q", got, tt.wantOrder)
				}
			}
		})
	}
}

func TestLocalityFailoverFollowsEjections(t *testing.T) {
	t.Parallel()
	h := NewHealth(HealthConfig{Now: newFakeClock().Now})
	targets := []Target{{Key: "east", Locality: "us-east/z1"}, {Key: "eu", Locality: "eu-west/z1"}, {Key: "ap", Locality: "ap-south/z1"}}
	cfg := PolicyConfig{Locality: LocalityConfig{Mode: LocalityFailover, Failover: []RegionFailover{{From: "us-east", To: "ap-south"}}}}
	p := NewPolicyPicker(targets, Client{Locality: ParseLocality("us-east/z1")}, h, cfg)
	eject(t, h, "east")
	checkShares(t, shares(t, p, 2000, nil), []float64{0, 0, 1})
}

func TestLocalityDistribute(t *testing.T) {
	t.Parallel()
	targets := []Target{
		{Key: "z1-a", Locality: "us-east/z1/s1", Weight: 1},
		{Key: "z1-b", Locality: "us-east/z1/s2", Weight: 3},
		{Key: "z2", Locality: "us-east/z2/s1", Weight: 5},
		{Key: "eu", Locality: "eu-west/z1/s1"},
	}
	tests := []struct {
		name   string
		client Locality
		rules  []Distribution
		want   []float64
	}{
		{
			name: "80/20 between two zones, endpoint weights within the zone", client: ParseLocality("us-east/z1/s1"),
			rules: []Distribution{{From: "us-east/z1/*", To: []LocalityWeight{{Locality: "us-east/z1/*", Weight: 80}, {Locality: "us-east/z2/*", Weight: 20}}}},
			want:  []float64{0.2, 0.6, 0.2, 0},
		},
		{
			name: "a wildcard to entry splits its weight by the localities' endpoint weights", client: ParseLocality("us-east/z1/s1"),
			rules: []Distribution{{From: "*", To: []LocalityWeight{{Locality: "us-east/*", Weight: 90}, {Locality: "eu-west/*", Weight: 10}}}},
			want:  []float64{0.1, 0.3, 0.5, 0.1},
		},
		{
			name: "the first rule whose from matches the proxy applies", client: ParseLocality("eu-west/z1/s1"),
			rules: []Distribution{
				{From: "us-east/*", To: []LocalityWeight{{Locality: "us-east/*", Weight: 100}}},
				{From: "eu-west/*", To: []LocalityWeight{{Locality: "eu-west/*", Weight: 50}, {Locality: "us-east/z2", Weight: 50}}},
			},
			want: []float64{0, 0, 0.5, 0.5},
		},
		{
			name: "no rule for the proxy leaves every endpoint by weight", client: ParseLocality("ap-south/z1/s1"),
			rules: []Distribution{{From: "us-east/*", To: []LocalityWeight{{Locality: "us-east/*", Weight: 100}}}},
			want:  []float64{0.1, 0.3, 0.5, 0.1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := PolicyConfig{LB: LBRandom, Locality: LocalityConfig{Mode: LocalityDistribute, Distribute: tt.rules}}
			p := NewPolicyPicker(targets, Client{Locality: tt.client}, nil, cfg)
			got := shares(t, p, picks, nil)
			for i := range tt.want {
				if d := got[i] - tt.want[i]; d > 0.03 || d < -0.03 {
					t.Errorf("target %s got %.3f of the picks, want %.3f±0.03 (all: %.3f)", targets[i].Key, got[i], tt.want[i], got)
				}
			}
		})
	}
}
