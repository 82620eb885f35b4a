package balance

import "testing"

func TestParseLocality(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Locality
	}{
		{name: "an empty string is no locality", in: "", want: Locality{}},
		{name: "a region alone leaves zone and subzone empty", in: "us-east1", want: Locality{Region: "us-east1"}},
		{name: "region and zone leave the subzone empty", in: "us-east1/us-east1-b", want: Locality{Region: "us-east1", Zone: "us-east1-b"}},
		{name: "all three parts are kept", in: "us-east1/us-east1-b/rack1", want: Locality{Region: "us-east1", Zone: "us-east1-b", Subzone: "rack1"}},
		{name: "segments past the third are ignored", in: "r/z/s/extra/more", want: Locality{Region: "r", Zone: "z", Subzone: "s"}},
		{name: "an empty middle part stays empty", in: "r//s", want: Locality{Region: "r", Subzone: "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ParseLocality(tt.in); got != tt.want {
				t.Errorf("ParseLocality(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLocalityString(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "r", "r/z", "r/z/s"} {
		t.Run("round-trips "+in, func(t *testing.T) {
			t.Parallel()
			if got := ParseLocality(in).String(); got != in {
				t.Errorf("ParseLocality(%q).String() = %q", in, got)
			}
		})
	}
}

func TestPriority(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		self string
		ep   string
		want int
	}{
		{name: "same region zone and subzone is priority 0", self: "r1/z1/s1", ep: "r1/z1/s1", want: 0},
		{name: "another subzone in the same zone is priority 1", self: "r1/z1/s1", ep: "r1/z1/s2", want: 1},
		{name: "another zone in the same region is priority 2", self: "r1/z1/s1", ep: "r1/z2/s1", want: 2},
		{name: "another region is priority 3", self: "r1/z1/s1", ep: "r2/z1/s1", want: 3},
		{name: "an endpoint without locality is another region", self: "r1/z1/s1", ep: "", want: 3},
		{name: "a proxy without locality ranks a located endpoint 0", self: "", ep: "r2/z9/s9", want: 0},
		{name: "a proxy without locality ranks an unlocated endpoint 0", self: "", ep: "", want: 0},
		{name: "a proxy with only a region matches endpoints with only that region", self: "r1", ep: "r1", want: 0},
		{name: "a proxy with only a region ranks a zoned endpoint in it as same region", self: "r1", ep: "r1/z1", want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Priority(ParseLocality(tt.self), ParseLocality(tt.ep)); got != tt.want {
				t.Errorf("Priority(%q, %q) = %d, want %d", tt.self, tt.ep, got, tt.want)
			}
		})
	}
}

func TestRankNetwork(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		self      string
		network   string
		ep        string
		epNetwork string
		want      int
		reason    string
	}{
		{name: "the same network adds nothing", self: "r/z/s", network: "n1", ep: "r/z/s", epNetwork: "n1", want: 0, reason: "same region/zone/subzone as the proxy"},
		{name: "another network ranks after every same-network locality", self: "r/z/s", network: "n1", ep: "r/z/s", epNetwork: "n2", want: NetworkPenalty, reason: "other network"},
		{name: "another network keeps the locality order among its endpoints", self: "r/z/s", network: "n1", ep: "r2", epNetwork: "n2", want: 3 + NetworkPenalty, reason: "other network"},
		{name: "an endpoint without a network is on the proxy's", self: "r/z/s", network: "n1", ep: "r/z2", epNetwork: "", want: 2, reason: "same region"},
		{name: "a proxy without a network sees every endpoint as local", self: "r/z/s", network: "", ep: "r/z/s2", epNetwork: "n2", want: 1, reason: "same zone"},
		{name: "a proxy without locality still ranks another network last", self: "", network: "n1", ep: "r/z/s", epNetwork: "n2", want: NetworkPenalty, reason: "other network"},
		{name: "a proxy without locality on the same network says so", self: "", network: "n1", ep: "r/z/s", epNetwork: "n1", want: 0, reason: "proxy has no locality"},
		{name: "another region on the same network says other region", self: "r/z/s", network: "n1", ep: "r9/z/s", epNetwork: "n1", want: 3, reason: "other region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			self, ep := ParseLocality(tt.self), ParseLocality(tt.ep)
			if got := rank(self, tt.network, ep, tt.epNetwork); got != tt.want {
				t.Errorf("rank = %d, want %d", got, tt.want)
			}
			if got := reason(self, tt.network, ep, tt.epNetwork); got != tt.reason {
				t.Errorf("reason = %q, want %q", got, tt.reason)
			}
		})
	}
}
