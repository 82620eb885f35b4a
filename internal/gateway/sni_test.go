package gateway

import (
	"strings"
	"testing"
)

func TestParseAutoSNI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, sni   string
		want        AutoSNI
		wantCluster string
		ok          bool
	}{
		{name: "a cluster without subset", sni: "outbound_.443_._.httpbin.com", ok: true,
			want: AutoSNI{Port: 443, Host: "httpbin.com"}, wantCluster: "outbound|443||httpbin.com"},
		{name: "a cluster with a subset", sni: "outbound_.8080_.v1_.reviews.default.svc.cluster.local", ok: true,
			want: AutoSNI{Port: 8080, Subset: "v1", Host: "reviews.default.svc.cluster.local"}, wantCluster: "outbound|8080|v1|reviews.default.svc.cluster.local"},
		{name: "a plain host name is not of the form", sni: "httpbin.com"},
		{name: "an inbound cluster is not routed", sni: "inbound_.80_._.httpbin.com"},
		{name: "port 0 is no port", sni: "outbound_.0_._.a.com"},
		{name: "a port beyond 65535 is no port", sni: "outbound_.70000_._.a.com"},
		{name: "a missing host is refused", sni: "outbound_.80_._."},
		{name: "a missing subset separator is refused", sni: "outbound_.80_.a.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseAutoSNI(tc.sni)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ParseAutoSNI(%q) = %+v, %v; want %+v, %v", tc.sni, got, ok, tc.want, tc.ok)
			}
			if ok && got.Cluster() != tc.wantCluster {
				t.Errorf("Cluster() = %s, want %s", got.Cluster(), tc.wantCluster)
			}
		})
	}
}

// FuzzParseAutoSNI checks that any SNI parses without panicking, and that what parses names
// its cluster back in the same form.
func FuzzParseAutoSNI(f *testing.F) {
	for _, s := range []string{"outbound_.443_._.httpbin.com", "outbound_.8080_.v1_.a.b", "outbound_._._.", "outbound_.1_.x_.\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sni string) {
		a, ok := ParseAutoSNI(sni)
		if !ok {
			return
		}
		if a.Port == 0 || a.Host == "" || strings.Contains(a.Subset, ".") {
			t.Fatalf("ParseAutoSNI(%q) = %+v", sni, a)
		}
		sub := a.Subset
		back, ok := ParseAutoSNI("outbound_." + strings.Split(a.Cluster(), "|")[1] + "_." + sub + "_." + a.Host)
		if !ok || back != a {
			t.Fatalf("round trip of %+v gave %+v, %v", a, back, ok)
		}
	})
}
