package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/dnsproxy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/vip"
)

// dnsFlags configure the DNS proxy and its address allocation.
type dnsFlags struct {
	listen      string
	vipCIDR     string
	vipCIDR6    string
	vipState    string
	cacheSize   int
	maxInFlight int
	maxTCP      int
}

func (d *dnsFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&d.listen, "dns-listen", "", "DNS proxy address (UDP and TCP), e.g. 127.0.0.1:15053: answers A/AAAA for ServiceEntry hosts with their declared or allocated addresses and forwards the rest to --dns-server or /etc/resolv.conf; empty disables it and address allocation")
	fl.StringVar(&d.vipCIDR, "dns-vip-cidr", vip.DefaultV4.String(), "IPv4 range the DNS proxy allocates host addresses from (Istio's); a host gets none when it is full (counted, warning ME2010)")
	fl.StringVar(&d.vipCIDR6, "dns-vip-cidr-v6", vip.DefaultV6.String(), "IPv6 range the DNS proxy allocates host addresses from (Istio's)")
	fl.StringVar(&d.vipState, "dns-vip-state", "", "file keeping allocated addresses across restarts (JSON, rewritten on change); without it a restart gives the same addresses only for the same set of hosts")
	fl.IntVar(&d.cacheSize, "dns-cache-size", dnsproxy.DefaultCacheSize, "forwarded answers the DNS proxy caches for their TTL (CoreDNS's default); 0 disables the cache")
	fl.IntVar(&d.maxInFlight, "dns-max-inflight", dnsproxy.DefaultMaxInFlight, "forwarded DNS queries waiting on the upstream at once; beyond it a query gets SERVFAIL (0: the default)")
	fl.IntVar(&d.maxTCP, "dns-max-tcp-connections", dnsproxy.DefaultMaxTCPConns, "DNS-over-TCP connections open at once; beyond it a connection is closed when accepted (0: the default)")
}

// dnsProxy is the DNS proxy of one run: the allocator, which outlives every snapshot, and the
// server. A nil *dnsProxy is the proxy switched off.
type dnsProxy struct {
	flags *dnsFlags
	log   *slog.Logger
	alloc *vip.Allocator
	srv   *dnsproxy.Server
	pc    net.PacketConn
	ln    net.Listener
}

// prepareDNS makes the allocator, with the state file's allocations kept first, when
// --dns-listen is set; it must run before the config is compiled, which asks it for addresses.
func prepareDNS(f *dnsFlags, log *slog.Logger) (*dnsProxy, error) {
	if f.listen == "" {
		return nil, nil
	}
	if f.cacheSize < 0 || f.maxInFlight < 0 || f.maxTCP < 0 {
		return nil, usageError("--dns-cache-size, --dns-max-inflight and --dns-max-tcp-connections must not be negative")
	}
	alloc, err := newAllocator(f)
	if err != nil {
		return nil, err
	}
	if f.vipState != "" {
		prior, err := vip.LoadState(f.vipState)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		if n := alloc.Restore(prior); n > 0 {
			log.Warn("dns: allocations in the state file outside the ranges or held twice were dropped", "file", f.vipState, "dropped", n)
		}
	}
	return &dnsProxy{flags: f, log: log, alloc: alloc}, nil
}

func newAllocator(f *dnsFlags) (*vip.Allocator, error) {
	// Empty (a runFlags made without its flags, as tests make them) takes Istio's ranges.
	v4, err := netip.ParsePrefix(cmp.Or(f.vipCIDR, vip.DefaultV4.String()))
	if err != nil {
		return nil, usageError("--dns-vip-cidr: %v", err)
	}
	v6, err := netip.ParsePrefix(cmp.Or(f.vipCIDR6, vip.DefaultV6.String()))
	if err != nil {
		return nil, usageError("--dns-vip-cidr-v6: %v", err)
	}
	alloc, err := vip.New(vip.Config{V4: v4, V6: v6})
	if err != nil {
		return nil, usageError("--dns-vip-cidr / --dns-vip-cidr-v6: %v", err)
	}
	return alloc, nil
}

// compileOptions are the options every compile of this run takes: none when the DNS proxy is off.
func (d *dnsProxy) compileOptions() []compile.Option {
	if d == nil {
		return nil
	}
	return []compile.Option{compile.WithAutoAddresses(allocateFunc(d.alloc, d.flags.vipState, d.log))}
}

// allocateFunc adapts the allocator to the registry's build, saving the state file when an
// allocation changed.
func allocateFunc(alloc *vip.Allocator, state string, log *slog.Logger) func([]string) map[string][]netip.Addr {
	return func(hosts []string) map[string][]netip.Addr {
		got := alloc.Allocate(hosts)
		if state != "" {
			if err := alloc.Save(state); err != nil && log != nil {
				log.Error("dns: allocations not saved; they hold until restart", "err", err)
			}
		}
		out := make(map[string][]netip.Addr, len(got))
		for h, a := range got {
			out[h] = []netip.Addr{a.V4, a.V6}
		}
		return out
	}
}

// open makes the DNS server answering from snap and binds its sockets.
func (d *dnsProxy) open(snap *registry.Snapshot, ns, server string) error {
	if d == nil {
		return nil
	}
	ups, search, err := upstreams(server)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	d.srv, err = dnsproxy.New(dnsproxy.Config{Namespace: ns, Upstreams: ups, Search: search,
		CacheSize: cacheSizeFlag(d.flags.cacheSize), MaxInFlight: d.flags.maxInFlight, Logger: d.log, Visible: sidecarScope(ns)}, snap)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if d.pc, d.ln, err = dnsproxy.Listen(d.flags.listen); err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}

// serve answers DNS in g until g's context ends.
func (d *dnsProxy) serve(g *serveGroup) {
	if d == nil {
		return
	}
	g.serve("dns", d.ln, func(ln net.Listener) error { return d.srv.Serve(g.ctx, d.pc, ln, d.flags.maxTCP) })
}

// sidecarScope is the hook for the Sidecar scope's egress hosts: nil (every host exportTo lets
// ns see) until Sidecar resources are applied.
func sidecarScope(string) func(*registry.Service) bool { return nil }

// cacheSizeFlag maps the flag's 0 (no cache) to the Config's -1.
func cacheSizeFlag(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// update answers from snap from now on; called for every accepted reload.
func (d *dnsProxy) update(snap *registry.Snapshot) {
	if d != nil && d.srv != nil {
		d.srv.Update(snap)
	}
}

// upstreams are the servers forwarded to (--dns-server, else /etc/resolv.conf) and the
// search domains of /etc/resolv.conf, which the clients' resolvers append.
func upstreams(server string) (servers, search []string, err error) {
	conf, confErr := dns.ClientConfigFromFile("/etc/resolv.conf")
	if confErr == nil {
		search = conf.Search
	}
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
		}
		return []string{server}, search, nil
	}
	if confErr != nil {
		return nil, nil, fmt.Errorf("dns proxy: read name servers: %w", confErr)
	}
	for _, s := range conf.Servers {
		servers = append(servers, net.JoinHostPort(s, conf.Port))
	}
	if len(servers) == 0 {
		return nil, nil, fmt.Errorf("dns proxy: /etc/resolv.conf lists no nameserver")
	}
	return servers, search, nil
}
