package proxy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
)

// randomDocs writes up to four documents of the kinds a reload changes: ServiceEntries over a
// small pool of hosts, names and addresses (so that they share keys), DestinationRules,
// VirtualServices and Sidecars, in two namespaces.
func randomDocs(r *rand.Rand, serial *int) string {
	var b strings.Builder
	for range r.IntN(5) {
		*serial++
		ns := []string{"default", "team"}[r.IntN(2)]
		host := fmt.Sprintf("h%d.example.com", r.IntN(8))
		fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\n")
		switch r.IntN(6) {
		case 0:
			fmt.Fprintf(&b, "kind: DestinationRule\nmetadata: {name: dr-%d, namespace: %s}\nspec:\n  host: %s\n"+
				"  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}\n  subsets: [{name: v1, labels: {version: v1}}]\n", *serial, ns, host)
		case 1:
			fmt.Fprintf(&b, "kind: VirtualService\nmetadata: {name: vs-%d, namespace: %s}\nspec:\n  hosts: [%s]\n"+
				"  http: [{route: [{destination: {host: h%d.example.com}}]}]\n", *serial, ns, host, r.IntN(8))
		case 2:
			fmt.Fprintf(&b, "kind: Sidecar\nmetadata: {name: sc-%d, namespace: %s}\nspec:\n  egress: [{hosts: [\"*/h%d.example.com\", \"./*\"]}]\n", *serial, ns, r.IntN(8))
		default:
			ep := fmt.Sprintf("{address: 127.0.0.%d}", 1+r.IntN(4))
			res := "STATIC"
			if r.IntN(2) == 0 {
				ep, res = fmt.Sprintf("{address: n%d.internal}", r.IntN(4)), "DNS"
			}
			addr := ""
			if r.IntN(3) == 0 {
				addr = fmt.Sprintf("  addresses: [240.0.0.%d]\n", r.IntN(3))
			}
			fmt.Fprintf(&b, "kind: ServiceEntry\nmetadata: {name: se-%d, namespace: %s}\nspec:\n  hosts: [%s, x%d.example.org]\n%s"+
				"  ports: [{number: %d, name: p, protocol: HTTP}]\n  resolution: %s\n  endpoints: [%s]\n",
				*serial, ns, host, *serial, addr, []int{80, 8080}[r.IntN(2)], res, ep)
		}
	}
	return b.String()
}

func TestIncrementalReloadsServeWhatAFreshStartDoes(t *testing.T) {
	t.Parallel()
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("with seed %d", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 11))
			dir := t.TempDir()
			serial := 0
			write := func(name string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(randomDocs(r, &serial)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 5 {
				write(fmt.Sprintf("f%d.yaml", i))
			}
			res, err := resolve.New(resolve.Config{Server: "127.0.0.1:1"})
			if err != nil {
				t.Fatal(err)
			}
			defer res.Close()
			cache := compile.NewCache()
			opts := config.Options{Namespace: "default"}
			first, err := cache.Paths([]string{dir}, opts, 1)
			if err != nil {
				t.Fatal(err)
			}
			p := New(Config{Resolver: res}, first.Snapshot)
			defer p.pool.Close()
			for step := range 30 {
				name := fmt.Sprintf("f%d.yaml", r.IntN(7))
				if r.IntN(5) == 0 {
					os.Remove(filepath.Join(dir, name))
				} else {
					write(name)
				}
				got, err := cache.Paths([]string{dir}, opts, uint64(step+2))
				if err != nil {
					t.Fatal(err)
				}
				want, err := compile.Paths([]string{dir}, opts, uint64(step+2))
				if err != nil {
					t.Fatal(err)
				}
				if g, w := decisions(got), decisions(want); g != w {
					t.Fatalf("step %d: the cached compile decides\n%s\na fresh one\n%s", step, g, w)
				}
				p.Update(got.Snapshot)
				checkLive(t, p)
			}
		})
	}
}

// decisions writes what a compile decided: findings, services, and the match of every host of
// the pool on both ports from both namespaces, by host and by address.
func decisions(res *compile.Result) string {
	var b strings.Builder
	for _, d := range res.Diagnostics {
		fmt.Fprintln(&b, d.String())
	}
	for _, s := range res.Snapshot.Services {
		fmt.Fprintf(&b, "%s/%s %s %v %v\n", s.Namespace, s.Entry, s.Host, s.Ports, s.Addresses)
	}
	for _, ns := range []string{"default", "team"} {
		for _, port := range []uint32{80, 8080} {
			for h := range 8 {
				host := fmt.Sprintf("h%d.example.com", h)
				m := res.Snapshot.Match(registry.Query{Namespace: ns, Host: host, Port: port, Protocol: registry.TrafficHTTP}, false)
				fmt.Fprintf(&b, "%s %s:%d -> %s\n", ns, host, port, describeMatch(m))
			}
			for a := range 3 {
				ip := netip.AddrFrom4([4]byte{240, 0, 0, byte(a)})
				m := res.Snapshot.Match(registry.Query{Namespace: ns, IP: ip, Port: port}, false)
				fmt.Fprintf(&b, "%s %s:%d -> %s\n", ns, ip, port, describeMatch(m))
			}
		}
	}
	return b.String()
}

func describeMatch(m registry.Match) string {
	if m.Service == nil {
		return fmt.Sprintf("%v", m.Outcome)
	}
	return fmt.Sprintf("%v %s/%s@%d %s %s", m.Outcome, m.Service.Namespace, m.Service.Entry, m.Service.Source.Line, m.Service.Host, m.Cluster)
}

// checkLive checks the proxy's carried-over state against a count made from scratch of the
// snapshot it serves, and its endpoint counters against that state's keys.
func checkLive(t *testing.T, p *Proxy) {
	t.Helper()
	p.updateMu.Lock()
	defer p.updateMu.Unlock()
	fresh := liveState{}
	fresh.advance(p.table.Load().snap)
	for _, c := range []struct {
		name      string
		got, want map[string]int
	}{
		{name: "health keys", got: p.live.health, want: fresh.health},
		{name: "names", got: p.live.names, want: fresh.names},
		{name: "clusters", got: p.live.clusters, want: fresh.clusters},
	} {
		if !maps.Equal(c.got, c.want) {
			t.Fatalf("%s carried over: %v, counted anew: %v", c.name, c.got, c.want)
		}
	}
	set := p.counts.set.Load()
	var counted []string
	for k, e := range set.base {
		if _, over := set.over[k]; !over && e != nil {
			counted = append(counted, k)
		}
	}
	for k, e := range set.over {
		if e != nil {
			counted = append(counted, k)
		}
	}
	want := slices.Collect(p.live.keys)
	slices.Sort(counted)
	slices.Sort(want)
	if !slices.Equal(counted, want) {
		t.Fatalf("endpoint counters for %v, live keys %v", counted, want)
	}
}

func TestEndpointCountersKeepTheirTotalsAcrossChangesAndFolds(t *testing.T) {
	t.Parallel()
	var c endpointCounts
	live := map[string]bool{}
	for i := range 2000 {
		live[fmt.Sprintf("10.0.%d.%d:80", i/256, i%256)] = true
	}
	c.retain(func(yield func(string) bool) {
		for k := range live {
			if !yield(k) {
				return
			}
		}
	}, len(live))
	kept := "10.0.0.1:80"
	c.requestRouted(kept)
	folded := false
	for step := range 6 {
		// 600 keys go and 600 come each step: the overlay passes its bound of 1,274 in three.
		var moved []string
		for i := range 600 {
			gone, came := fmt.Sprintf("10.0.%d.%d:80", (step*600+i+2)/256, (step*600+i+2)%256), fmt.Sprintf("10.9.%d.%d:80", (step*600+i)/256, (step*600+i)%256)
			delete(live, gone)
			live[came] = true
			moved = append(moved, gone, came)
		}
		before := c.set.Load()
		c.change(moved, func(k string) bool { return live[k] })
		after := c.set.Load()
		folded = folded || (len(before.over) > 0 && len(after.over) == 0)
		for _, k := range moved {
			if got := c.of(k) != nil; got != live[k] {
				t.Fatalf("step %d: counters of %s present %v, live %v", step, k, got, live[k])
			}
		}
		if got := c.of(kept).load().RqTotal; got != 1 {
			t.Fatalf("step %d: the kept endpoint's request total is %d, want 1", step, got)
		}
	}
	if !folded {
		t.Fatal("the overlay was never folded into its base; the test does not reach that path")
	}
}
