package balance

import (
	"math"
	"testing"
)

func TestExplain(t *testing.T) {
	t.Parallel()
	targets := []Target{
		{Key: "other-region", Weight: 5, Locality: "r2/z1/s1"},
		{Key: "same-zone", Weight: 1, Locality: "r1/z1/s9"},
		{Key: "local-light", Weight: 1, Locality: "r1/z1/s1"},
		{Key: "other-network", Weight: 9, Locality: "r1/z1/s1", Network: "n2"},
		{Key: "local-heavy", Weight: 3, Locality: "r1/z1/s1"},
		{Key: "same-region", Weight: 0, Locality: "r1/z2"},
		{Key: "local-light-2", Weight: 1, Locality: "r1/z1/s1", Network: "n1"},
	}
	tests := []struct {
		name  string
		self  string
		eject []string
		want  []Ranked
	}{
		{
			name: "orders by priority, then weight descending, then input order, with reasons and shares",
			self: "r1/z1/s1",
			want: []Ranked{
				{Index: 4, Key: "local-heavy", Priority: 0, Weight: 3, Share: 60, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 2, Key: "local-light", Priority: 0, Weight: 1, Share: 20, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 6, Key: "local-light-2", Priority: 0, Weight: 1, Share: 20, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 1, Key: "same-zone", Priority: 1, Weight: 1, Share: 100, Reason: "same zone"},
				{Index: 5, Key: "same-region", Priority: 2, Weight: 1, Share: 100, Reason: "same region"},
				{Index: 0, Key: "other-region", Priority: 3, Weight: 5, Share: 100, Reason: "other region"},
				{Index: 3, Key: "other-network", Priority: 0 + NetworkPenalty, Weight: 9, Share: 100, Reason: "other network"},
			},
		},
		{
			name:  "shows ejected targets with no share and moves the active priority",
			self:  "r1/z1/s1",
			eject: []string{"local-heavy", "local-light", "local-light-2"},
			want: []Ranked{
				{Index: 4, Key: "local-heavy", Priority: 0, Weight: 3, Share: 60, Ejected: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 2, Key: "local-light", Priority: 0, Weight: 1, Share: 20, Ejected: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 6, Key: "local-light-2", Priority: 0, Weight: 1, Share: 20, Ejected: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 1, Key: "same-zone", Priority: 1, Weight: 1, Share: 100, Active: true, Reason: "same zone"},
				{Index: 5, Key: "same-region", Priority: 2, Weight: 1, Share: 100, Reason: "same region"},
				{Index: 0, Key: "other-region", Priority: 3, Weight: 5, Share: 100, Reason: "other region"},
				{Index: 3, Key: "other-network", Priority: NetworkPenalty, Weight: 9, Share: 100, Reason: "other network"},
			},
		},
		{
			name:  "gives an ejected target's share to the healthy ones in its priority",
			self:  "r1/z1/s1",
			eject: []string{"local-light"},
			want: []Ranked{
				{Index: 4, Key: "local-heavy", Priority: 0, Weight: 3, Share: 75, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 2, Key: "local-light", Priority: 0, Weight: 1, Share: 0, Ejected: true, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 6, Key: "local-light-2", Priority: 0, Weight: 1, Share: 25, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 1, Key: "same-zone", Priority: 1, Weight: 1, Share: 100, Reason: "same zone"},
				{Index: 5, Key: "same-region", Priority: 2, Weight: 1, Share: 100, Reason: "same region"},
				{Index: 0, Key: "other-region", Priority: 3, Weight: 5, Share: 100, Reason: "other region"},
				{Index: 3, Key: "other-network", Priority: NetworkPenalty, Weight: 9, Share: 100, Reason: "other network"},
			},
		},
		{
			name: "without a proxy locality puts every same-network target in one priority",
			self: "",
			want: []Ranked{
				{Index: 0, Key: "other-region", Priority: 0, Weight: 5, Share: 5.0 / 12 * 100, Active: true, Reason: "proxy has no locality"},
				{Index: 4, Key: "local-heavy", Priority: 0, Weight: 3, Share: 3.0 / 12 * 100, Active: true, Reason: "proxy has no locality"},
				{Index: 1, Key: "same-zone", Priority: 0, Weight: 1, Share: 1.0 / 12 * 100, Active: true, Reason: "proxy has no locality"},
				{Index: 2, Key: "local-light", Priority: 0, Weight: 1, Share: 1.0 / 12 * 100, Active: true, Reason: "proxy has no locality"},
				{Index: 5, Key: "same-region", Priority: 0, Weight: 1, Share: 1.0 / 12 * 100, Active: true, Reason: "proxy has no locality"},
				{Index: 6, Key: "local-light-2", Priority: 0, Weight: 1, Share: 1.0 / 12 * 100, Active: true, Reason: "proxy has no locality"},
				{Index: 3, Key: "other-network", Priority: NetworkPenalty, Weight: 9, Share: 100, Reason: "other network"},
			},
		},
		{
			name:  "when everything is ejected the best priority stays active with its configured split",
			self:  "r1/z1/s1",
			eject: []string{"other-region", "same-zone", "local-light", "other-network", "local-heavy", "same-region", "local-light-2"},
			want: []Ranked{
				{Index: 4, Key: "local-heavy", Priority: 0, Weight: 3, Share: 60, Ejected: true, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 2, Key: "local-light", Priority: 0, Weight: 1, Share: 20, Ejected: true, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 6, Key: "local-light-2", Priority: 0, Weight: 1, Share: 20, Ejected: true, Active: true, Reason: "same region/zone/subzone as the proxy"},
				{Index: 1, Key: "same-zone", Priority: 1, Weight: 1, Share: 100, Ejected: true, Reason: "same zone"},
				{Index: 5, Key: "same-region", Priority: 2, Weight: 1, Share: 100, Ejected: true, Reason: "same region"},
				{Index: 0, Key: "other-region", Priority: 3, Weight: 5, Share: 100, Ejected: true, Reason: "other region"},
				{Index: 3, Key: "other-network", Priority: NetworkPenalty, Weight: 9, Share: 100, Ejected: true, Reason: "other network"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHealth(HealthConfig{})
			for _, key := range tt.eject {
				eject(t, h, key)
			}
			got := NewPicker(targets, ParseLocality(tt.self), "n1", h).Explain()
			if len(got) != len(tt.want) {
				t.Fatalf("Explain returned %d rows, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				g := got[i]
				w.Locality, w.Network = targets[w.Index].Locality, targets[w.Index].Network
				if math.Abs(g.Share-w.Share) < 1e-9 {
					g.Share = w.Share
				}
				if g != w {
					t.Errorf("row %d:\n got  %+v\n want %+v", i, g, w)
				}
			}
		})
	}
}

func TestExplainListsLocalitiesDistributeLeavesOut(t *testing.T) {
	t.Parallel()
	targets := []Target{{Key: "east", Locality: "us-east/z1"}, {Key: "eu", Locality: "eu-west/z1"}}
	cfg := PolicyConfig{Locality: LocalityConfig{Mode: LocalityDistribute, Distribute: []Distribution{{From: "*", To: []LocalityWeight{{Locality: "us-east/*", Weight: 100}}}}}}
	got := NewPolicyPicker(targets, Client{Locality: ParseLocality("us-east/z1")}, nil, cfg).Explain()
	if len(got) != 2 || got[0].Key != "east" || got[0].Share != 100 || got[1].Key != "eu" || got[1].Share != 0 || got[1].Weight != 1 {
		t.Errorf("Explain = %+v, want east with 100%% and eu listed with no share", got)
	}
}
