package balance

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkPolicyPick measures one Pick (or Key and PickHash) per policy over 8 targets of one
// priority, with equal and with unequal weights; every case must report 0 allocs/op.
func BenchmarkPolicyPick(b *testing.B) {
	benches := []struct {
		name   string
		cfg    PolicyConfig
		equal  bool
		hashed bool
	}{
		{name: "default weighted random", cfg: PolicyConfig{}},
		{name: "ROUND_ROBIN", cfg: PolicyConfig{LB: LBRoundRobin}},
		{name: "LEAST_REQUEST equal weights", cfg: PolicyConfig{LB: LBLeastRequest}, equal: true},
		{name: "LEAST_REQUEST unequal weights", cfg: PolicyConfig{LB: LBLeastRequest}},
		{name: "RANDOM", cfg: PolicyConfig{LB: LBRandom}},
		{name: "RING_HASH header", cfg: PolicyConfig{LB: LBRingHash, Hash: HashPolicy{Header: "x-user"}}, hashed: true},
		{name: "MAGLEV header", cfg: PolicyConfig{LB: LBMaglev, Hash: HashPolicy{Header: "x-user"}}, hashed: true},
		{name: "MAGLEV cookie", cfg: PolicyConfig{LB: LBMaglev, Hash: HashPolicy{Cookie: &CookiePolicy{Name: "s", TTL: time.Hour}}}, hashed: true},
		{name: "MAGLEV source IP", cfg: PolicyConfig{LB: LBMaglev, Hash: HashPolicy{SourceIP: true}}, hashed: true},
		{name: "RING_HASH query", cfg: PolicyConfig{LB: LBRingHash, Hash: HashPolicy{Query: "u"}}, hashed: true},
	}
	hdr := map[string]string{"x-user": "alice", "Cookie": "a=1; s=abcdef"}
	req := HashRequest{Header: func(n string) string { return hdr[n] }, RawQuery: "a=1&u=bob", Source: netip.MustParseAddr("192.0.2.7")}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			targets := benchTargets(8)
			for i := range targets {
				targets[i].Locality = "r1/z1/s1"
				if bb.equal {
					targets[i].Weight = 1
				}
			}
			p := NewPolicyPicker(targets, Client{Locality: ParseLocality("r1/z1/s1")}, NewHealth(HealthConfig{}), bb.cfg)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if !bb.hashed {
						i, _ := p.Pick(nil)
						p.Begin(i)
						p.End(i)
						continue
					}
					key, ok, _ := bb.cfg.Hash.Key(req)
					if ok {
						p.PickHash(key, nil)
					}
				}
			})
		})
	}
}
