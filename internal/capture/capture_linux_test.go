package capture

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// TestSetupCapturesWhatItShould sets up capture in a namespace with each iptables backend and each
// option set in turn (every setup replacing the last), and checks where real connections and DNS
// queries arrive; teardown then leaves the rules exactly as they were before, twice over.
func TestSetupCapturesWhatItShould(t *testing.T) {
	t.Parallel()
	captured := func(dst string) string { return "captured " + dst }
	remote4, remote6 := remoteAddr4+":9000", "["+remoteAddr6+"]:9000"
	type dialCase struct{ addr, want string }
	cases := []struct {
		name string
		edit func(o *Options)
		dial []dialCase
	}{
		{name: "with the defaults every outbound TCP connection is captured, loopback is not",
			edit: func(*Options) {},
			dial: []dialCase{{addr: remote4, want: captured(remote4)}, {addr: remote6, want: captured(remote6)},
				{addr: "127.0.0.1:9002", want: "local"}, {addr: appAddr4 + ":9002", want: "dial failed"}}},
		{name: "an excluded port goes straight to its destination",
			edit: func(o *Options) { o.ExcludePorts = []PortRange{{First: 9001, Last: 9001}} },
			dial: []dialCase{{addr: remoteAddr4 + ":9001", want: "remote"}, {addr: remote4, want: captured(remote4)}}},
		{name: "an excluded CIDR goes straight to its destination, other families still captured",
			edit: func(o *Options) { o.ExcludeCIDRs = []netip.Prefix{netip.MustParsePrefix(remoteAddr4 + "/32")} },
			dial: []dialCase{{addr: remote4, want: "remote"}, {addr: remote6, want: captured(remote6)}}},
		{name: "only included CIDRs are captured",
			edit: func(o *Options) {
				o.AllCIDRs, o.IncludeCIDRs = false, []netip.Prefix{netip.MustParsePrefix("10.213.1.0/24")}
			},
			dial: []dialCase{{addr: remote4, want: captured(remote4)}, {addr: remote6, want: "remote"}}},
		{name: "only included ports are captured",
			edit: func(o *Options) { o.IncludePorts = []PortRange{{First: 9001, Last: 9001}} },
			dial: []dialCase{{addr: remote4, want: "remote"}, {addr: remoteAddr4 + ":9001", want: captured(remoteAddr4 + ":9001")}}},
		{name: "included ports are captured only at included CIDRs",
			edit: func(o *Options) {
				o.IncludePorts = []PortRange{{First: 9000, Last: 9000}}
				o.AllCIDRs, o.IncludeCIDRs = false, []netip.Prefix{netip.MustParsePrefix("fd00:213:1::/64")}
			},
			dial: []dialCase{{addr: remote4, want: "remote"}, {addr: remote6, want: captured(remote6)},
				{addr: "[" + remoteAddr6 + "]:9001", want: "remote"}}},
	}
	for _, backend := range []string{BackendNFT, BackendLegacy} {
		t.Run("with iptables-"+backend, func(t *testing.T) {
			t.Parallel()
			tp := newTopology(t, backend)
			ctx := context.Background()
			before := tp.saveAll(t)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					o := Defaults()
					tc.edit(&o)
					if err := tp.tables.Setup(ctx, o); err != nil {
						t.Fatal(err)
					}
					for _, d := range tc.dial {
						if got := tp.dial(t, d.addr); !strings.HasPrefix(got, d.want) {
							t.Errorf("a connection to %s: got %q, want %q", d.addr, got, d.want)
						}
					}
				})
			}
			t.Run("the proxy's own connections are not captured", func(t *testing.T) {
				if err := tp.tables.Setup(ctx, Defaults()); err != nil {
					t.Fatal(err)
				}
				for _, host := range []string{remoteAddr4, remoteAddr6} {
					for _, port := range []string{"9000", "53"} {
						if got := tp.dialAsProxy(t, host, port); got != "remote" {
							t.Errorf("the proxy's connection to %s port %s: got %q, want it to reach the remote server", host, port, got)
						}
					}
				}
			})
			t.Run("DNS over UDP and TCP is captured, to a loopback resolver too", func(t *testing.T) {
				for _, q := range []struct{ network, server string }{{network: "udp", server: remoteAddr4 + ":53"},
					{network: "tcp", server: remoteAddr4 + ":53"}, {network: "udp", server: "[" + remoteAddr6 + "]:53"},
					{network: "udp", server: "127.0.0.53:53"}} {
					if got := tp.query(t, q.network, q.server); got != dnsMarker {
						t.Errorf("a %s query to %s: got %q, want the DNS port's answer %s", q.network, q.server, got, dnsMarker)
					}
				}
			})
			t.Run("show prints our chains of both families", func(t *testing.T) {
				shown, err := tp.tables.Show(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, fam := range Families {
					joined := strings.Join(shown[fam], "\n")
					for _, want := range []string{":" + ChainOutput, ":" + ChainRedirect, ":" + ChainDNSRedirect, "-A OUTPUT -p tcp -j " + ChainOutput} {
						if !strings.Contains(joined, want) {
							t.Errorf("%s: show lacks %q:\n%s", fam, want, joined)
						}
					}
				}
			})
			t.Run("teardown leaves the rules as they were, and may run again", func(t *testing.T) {
				for range 2 {
					if err := tp.tables.Teardown(ctx); err != nil {
						t.Fatal(err)
					}
					if after := tp.saveAll(t); after != before {
						t.Errorf("iptables-save after teardown:\n%s\nbefore setup:\n%s", after, before)
					}
				}
				if got := tp.dial(t, remote4); got != "remote" {
					t.Errorf("after teardown a connection to %s: got %q, want it to reach the remote server", remote4, got)
				}
			})
		})
	}
}

// TestTeardownLeavesOthersRulesAlone sets up and tears down beside rules another tool wrote in the
// nat and filter tables, and on a table that never had ours.
func TestTeardownLeavesOthersRulesAlone(t *testing.T) {
	t.Parallel()
	tp := newTopology(t, BackendNFT)
	ctx := context.Background()
	if err := tp.tables.Teardown(ctx); err != nil {
		t.Fatalf("teardown on a clean table: %v", err)
	}
	tp.app.Exec("iptables-nft", "-w", "-t", "nat", "-N", "OTHER")
	tp.app.Exec("iptables-nft", "-w", "-t", "nat", "-A", "OUTPUT", "-d", "10.213.7.0/24", "-j", "OTHER")
	tp.app.Exec("iptables-nft", "-w", "-A", "OUTPUT", "-d", "10.213.8.0/24", "-j", "ACCEPT")
	before := tp.saveAll(t)
	if err := tp.tables.Setup(ctx, Defaults()); err != nil {
		t.Fatal(err)
	}
	if err := tp.tables.Setup(ctx, Defaults()); err != nil {
		t.Fatalf("a second setup over the first: %v", err)
	}
	if n := strings.Count(tp.saveAll(t), "-A OUTPUT -p tcp -j "+ChainOutput); n != 2 {
		t.Errorf("after two setups IPv4 and IPv6 hold %d TCP jumps to %s together, want 1 each", n, ChainOutput)
	}
	if err := tp.tables.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if after := tp.saveAll(t); after != before {
		t.Errorf("iptables-save after teardown:\n%s\nbefore setup:\n%s", after, before)
	}
}

// TestFailedSetupLeavesNothingBehind makes the IPv6 restore fail, as it does on a kernel without
// IPv6 nat, and checks that the IPv4 rules already applied are removed again.
func TestFailedSetupLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	tp := newTopology(t, BackendNFT)
	before := tp.saveAll(t)
	restore6, _ := tp.tables.Backend.Commands(IPv6)
	failing := tp.tables
	failing.Run = func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		if name == restore6 {
			return nil, errors.New("ip6tables-restore: no IPv6 nat here")
		}
		return tp.tables.Run(ctx, stdin, name, args...)
	}
	err := failing.Setup(context.Background(), Defaults())
	if err == nil || !strings.Contains(err.Error(), "IPv6") {
		t.Fatalf("Setup() = %v, want the IPv6 failure", err)
	}
	if after := tp.saveAll(t); after != before {
		t.Errorf("iptables-save after the failed setup:\n%s\nbefore:\n%s", after, before)
	}
}

// TestIPv4OnlyNeverRunsIP6Tables checks that on a kernel without IPv6 setup, show and teardown do
// their IPv4 part and never call ip6tables.
func TestIPv4OnlyNeverRunsIP6Tables(t *testing.T) {
	t.Parallel()
	tp := newTopology(t, BackendNFT)
	before := tp.saveAll(t)
	v4 := tp.tables
	v4.IPv4Only = true
	v4.Run = func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		if strings.HasPrefix(name, "ip6tables") {
			t.Errorf("ran %s with IPv4Only", name)
			return nil, errors.New("no IPv6")
		}
		return tp.tables.Run(ctx, stdin, name, args...)
	}
	ctx := context.Background()
	if err := v4.Setup(ctx, Defaults()); err != nil {
		t.Fatal(err)
	}
	if got := tp.dial(t, remoteAddr4+":9000"); got != "captured "+remoteAddr4+":9000" {
		t.Errorf("after an IPv4-only setup a connection got %q", got)
	}
	if shown, err := v4.Show(ctx); err != nil || len(shown[IPv4]) == 0 || len(shown[IPv6]) != 0 {
		t.Errorf("Show() = %v, %v; want IPv4 rules only", shown, err)
	}
	if err := v4.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if after := tp.saveAll(t); after != before {
		t.Errorf("iptables-save after teardown:\n%s\nbefore:\n%s", after, before)
	}
}
