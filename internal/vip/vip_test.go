package vip

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func hostsN(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d.example.test", prefix, i)
	}
	return out
}

func mustNew(t *testing.T, cfg Config) *Allocator {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// checkUnique fails when two hosts share an address or one lies outside its range.
func checkUnique(t *testing.T, a *Allocator, got map[string]Addrs, want4, want6 bool) {
	t.Helper()
	v4, v6 := a.Ranges()
	seen := map[netip.Addr]string{}
	for h, ad := range got {
		for _, x := range []struct {
			addr netip.Addr
			want bool
			in   netip.Prefix
		}{{addr: ad.V4, want: want4, in: v4}, {addr: ad.V6, want: want6, in: v6}} {
			if !x.addr.IsValid() {
				if x.want {
					t.Fatalf("%s got no address in %s", h, x.in)
				}
				continue
			}
			if !x.in.Contains(x.addr) || x.addr == x.in.Addr() {
				t.Fatalf("%s got %s, outside %s or its network address", h, x.addr, x.in)
			}
			if other, dup := seen[x.addr]; dup {
				t.Fatalf("%s and %s share %s", h, other, x.addr)
			}
			seen[x.addr] = h
		}
	}
}

func TestAllocateHundredThousandHosts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		v4    string
		hosts int
		want4 bool
	}{
		{name: "fit in a /14 and in 2001:2::/48 without a collision", v4: "240.240.0.0/14", hosts: 100_000, want4: true},
		{name: "overfill Istio's /16 and still each get an IPv6 address", v4: "240.240.0.0/16", hosts: 66_000, want4: false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := mustNew(t, Config{V4: netip.MustParsePrefix(tc.v4)})
			got := a.Allocate(hostsN(tc.hosts, "h"))
			if len(got) != tc.hosts {
				t.Fatalf("%d allocations, want %d", len(got), tc.hosts)
			}
			checkUnique(t, a, got, tc.want4, true)
			ex4, ex6 := a.Exhausted()
			if tc.want4 && ex4 != 0 || !tc.want4 && ex4 != uint64(tc.hosts-65_534) || ex6 != 0 {
				t.Fatalf("exhausted v4=%d v6=%d", ex4, ex6)
			}
		})
	}
}

func TestAllocationStability(t *testing.T) {
	t.Parallel()
	small := netip.MustParsePrefix("240.240.0.0/29") // six addresses: collisions are certain
	t.Run("keeps every host's address across reloads that add and remove others", func(t *testing.T) {
		t.Parallel()
		a := mustNew(t, Config{V4: small})
		first := a.Allocate([]string{"b.test", "c.test", "d.test"})
		second := a.Allocate([]string{"a.test", "b.test", "d.test", "e.test", "f.test"})
		for _, h := range []string{"b.test", "d.test"} {
			if first[h] != second[h] {
				t.Fatalf("%s moved from %v to %v", h, first[h], second[h])
			}
		}
		checkUnique(t, a, second, true, true)
		// c.test left; its address is not handed out while a free one remains, and c.test gets
		// it back when it returns.
		third := a.Allocate([]string{"a.test", "b.test", "c.test", "d.test", "e.test", "f.test"})
		if third["c.test"] != first["c.test"] {
			t.Fatalf("c.test came back with %v, had %v", third["c.test"], first["c.test"])
		}
		checkUnique(t, a, third, true, true)
	})
	t.Run("keeps addresses across a restart through the state file, whatever the new order", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "vips.json")
		a := mustNew(t, Config{V4: small})
		a.Allocate([]string{"z.test", "y.test"})
		before := a.Allocate([]string{"x.test", "y.test", "z.test"})
		if err := a.Save(path); err != nil {
			t.Fatal(err)
		}
		prior, err := LoadState(path)
		if err != nil {
			t.Fatal(err)
		}
		b := mustNew(t, Config{V4: small})
		if n := b.Restore(prior); n != 0 {
			t.Fatalf("restore dropped %d", n)
		}
		after := b.Allocate([]string{"a.test", "x.test", "y.test", "z.test"})
		for _, h := range []string{"x.test", "y.test", "z.test"} {
			if before[h] != after[h] {
				t.Fatalf("%s moved from %v to %v across the restart", h, before[h], after[h])
			}
		}
		checkUnique(t, b, after, true, true)
	})
	t.Run("gives the same addresses on a fresh allocator for the same hosts", func(t *testing.T) {
		t.Parallel()
		hosts := hostsN(50, "s")
		got1 := mustNew(t, Config{V4: small}).Allocate(hosts)
		got2 := mustNew(t, Config{V4: small}).Allocate(append([]string{hosts[49]}, hosts[:49]...))
		for _, h := range hosts {
			if got1[h] != got2[h] {
				t.Fatalf("%s: %v then %v", h, got1[h], got2[h])
			}
		}
	})
}

func TestAllocateExhaustion(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{V4: netip.MustParsePrefix("240.240.0.0/30")}) // two usable addresses
	got := a.Allocate([]string{"a.test", "b.test", "c.test"})
	n := 0
	for _, ad := range got {
		if ad.V4.IsValid() {
			n++
		}
		if !ad.V6.IsValid() {
			t.Fatal("a host got no IPv6 address")
		}
	}
	if ex4, _ := a.Exhausted(); n != 2 || ex4 != 1 {
		t.Fatalf("%d IPv4 addresses, %d exhausted; want 2 and 1", n, ex4)
	}
	t.Run("reclaims the address of a host that left, never of one still there", func(t *testing.T) {
		var gone, kept string
		for h, ad := range got {
			if ad.V4.IsValid() && gone == "" {
				gone = h
			} else if ad.V4.IsValid() {
				kept = h
			}
		}
		next := a.Allocate([]string{kept, "d.test"})
		if next[kept] != got[kept] || next["d.test"].V4 != got[gone].V4 {
			t.Fatalf("after %s left: %v, want %s kept and d.test given %s", gone, next, kept, got[gone].V4)
		}
	})
}

func TestRestoreDropsBadAddresses(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{})
	prior := map[string]Addrs{
		"ok.test":    {V4: netip.MustParseAddr("240.240.0.9"), V6: netip.MustParseAddr("2001:2::9")},
		"twice.test": {V4: netip.MustParseAddr("240.240.0.9")},
		"out.test":   {V4: netip.MustParseAddr("10.0.0.1"), V6: netip.MustParseAddr("2001:2:0:1::1")},
	}
	if n := a.Restore(prior); n != 3 {
		t.Fatalf("dropped %d, want 3 (a twice-held and two out-of-range addresses)", n)
	}
	got := a.Allocate([]string{"ok.test", "out.test", "twice.test"})
	if got["ok.test"] != prior["ok.test"] {
		t.Fatalf("ok.test = %v", got["ok.test"])
	}
	checkUnique(t, a, got, true, true)
}

func TestLoadState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cases := []struct {
		name    string
		content string
		wantErr bool
	}{
		{name: "reads no allocations from a missing file"},
		{name: "refuses a file that is not JSON", content: "{", wantErr: true},
		{name: "refuses an unknown version", content: `{"version":2}`, wantErr: true},
		{name: "reads a saved file", content: `{"version":1,"allocations":{"a.test":{"v4":"240.240.0.1"}}}`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
			if tc.content != "" {
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadState(path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestStaleAllocationsAreBounded(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{MaxStale: 2})
	first := a.Allocate(hostsN(5, "old"))
	a.Allocate([]string{"new.test"})
	held := a.Holdings()
	if len(held) != 3 {
		t.Fatalf("%d holdings, want the current host and 2 stale ones", len(held))
	}
	for _, h := range held {
		if h.Host != "new.test" && (h.Current || first[h.Host] != h.Addrs) {
			t.Fatalf("stale holding %+v, want its old addresses and not current", h)
		}
	}
}

func TestReclaimNeverTakesACurrentHost(t *testing.T) {
	t.Parallel()
	a := mustNew(t, Config{V4: netip.MustParsePrefix("240.240.0.0/30")}) // two usable addresses
	before := a.Allocate([]string{"y.test", "z.test"})
	// a.test sorts before both and the range is full: neither may lose its address to it.
	after := a.Allocate([]string{"a.test", "y.test", "z.test"})
	if after["y.test"] != before["y.test"] || after["z.test"] != before["z.test"] || after["a.test"].V4.IsValid() {
		t.Fatalf("before %v, after %v; want y and z kept and a without an IPv4 address", before, after)
	}
}

// Not parallel: it measures the bytes the process allocates while LoadState runs.
func TestLoadStateRefusesAnOversizedFileWithoutReadingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// A sparse file: 512 MiB that cost the disk nothing, eight times the limit.
	if err := f.Truncate(8 * maxStateBytes); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = LoadState(path)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("LoadState read a state file eight times the limit without an error")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 2*maxStateBytes {
		t.Fatalf("LoadState allocated %d MiB to refuse a file over %d MiB", grew>>20, maxStateBytes>>20)
	}
}

func TestNewRefusesRangesTheCaptureDoesNotRedirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		v4, v6  string
		wantErr bool
	}{
		{name: "Istio's ranges are fine", v4: "240.240.0.0/16", v6: "2001:2::/48"},
		{name: "a /12 of class E is fine", v4: "240.0.0.0/12", v6: "2001:2::/48"},
		{name: "the whole IPv4 space is refused", v4: "0.0.0.0/0", v6: "2001:2::/48", wantErr: true},
		{name: "loopback is refused", v4: "127.0.0.0/8", v6: "2001:2::/48", wantErr: true},
		{name: "a range holding loopback is refused", v4: "64.0.0.0/2", v6: "2001:2::/48", wantErr: true},
		{name: "link-local is refused", v4: "169.254.1.0/24", v6: "2001:2::/48", wantErr: true},
		{name: "a range wider than a /8 is refused", v4: "240.0.0.0/4", v6: "2001:2::/48", wantErr: true},
		{name: "IPv6 loopback is refused", v4: "240.240.0.0/16", v6: "::/64", wantErr: true},
		{name: "IPv6 wider than a /16 is refused", v4: "240.240.0.0/16", v6: "2000::/8", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(Config{V4: netip.MustParsePrefix(tt.v4), V6: netip.MustParsePrefix(tt.v6)})
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%s, %s) = %v, want error %v", tt.v4, tt.v6, err, tt.wantErr)
			}
		})
	}
}
