package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/admin"
	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/dnsproxy"
	"github.com/meshentry/meshentry/internal/explain"
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
	// srv is set by open; the metrics may be scraped before that.
	srv atomic.Pointer[dnsproxy.Server]
	pc  net.PacketConn
	ln  net.Listener
	// scope narrows the hosts answered to the Sidecar's.
	scope sidecarScope
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
func allocateFunc(alloc *vip.Allocator, state string, log *slog.Logger) registry.AutoAddressFunc {
	return func(hosts []string, avoid []netip.Prefix) map[string][]netip.Addr {
		got := alloc.Allocate(hosts, avoid...)
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

// open makes the DNS server answering from snap for the proxy scope describes (its namespace,
// labels and root namespace, which pick its Sidecar), binds its sockets and adds its metrics to reg.
func (d *dnsProxy) open(snap *registry.Snapshot, scope registry.ScopeProxy, server string, reg *prometheus.Registry) error {
	if d == nil {
		return nil
	}
	ns := scope.Namespace
	d.scope.proxy = scope
	d.scope.set(snap)
	if err := d.registerMetrics(reg); err != nil {
		d.log.Error("dns metrics left out", "err", err)
	}
	ups, search, err := upstreams(server)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	srv, err := dnsproxy.New(dnsproxy.Config{Namespace: ns, Upstreams: ups, Search: search,
		CacheSize: cacheSizeFlag(d.flags.cacheSize), MaxInFlight: d.flags.maxInFlight, Logger: d.log, Visible: d.scope.visible}, snap)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if d.pc, d.ln, err = dnsproxy.Listen(d.flags.listen); err != nil {
		return &exitError{code: 1, err: err}
	}
	d.srv.Store(srv)
	return nil
}

// serve answers DNS in g until g's context ends.
func (d *dnsProxy) serve(g *serveGroup) {
	if d == nil {
		return
	}
	g.serve("dns", d.ln, func(ln net.Listener) error { return d.srv.Load().Serve(g.ctx, d.pc, ln, d.flags.maxTCP) })
}

// sidecarScope is the DNS proxy's Visible hook: the Sidecar that applies to the proxy narrows
// the hosts answered to its egress hosts, as Istio's name table holds only the sidecar scope's
// services. The scope is made for each snapshot before the table is built from it.
type sidecarScope struct {
	proxy registry.ScopeProxy
	sc    atomic.Pointer[registry.Scope]
}

func (s *sidecarScope) set(snap *registry.Snapshot) {
	s.sc.Store(registry.NewScope(snap, s.proxy))
}

// visible reports whether the Sidecar imports svc's host (every host when none narrows egress).
func (s *sidecarScope) visible(svc *registry.Service) bool {
	return s.sc.Load().ImportsHost(svc.Namespace, svc.Host)
}

// cacheSizeFlag maps the flag's 0 (no cache) to the Config's -1.
func cacheSizeFlag(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// update answers from snap from now on; called for every accepted reload.
func (d *dnsProxy) update(snap *registry.Snapshot) {
	if d == nil {
		return
	}
	if srv := d.srv.Load(); srv != nil {
		d.scope.set(snap)
		srv.Update(snap)
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

// explainDNSFlags are explain's flags for a proxy whose DNS proxy is on.
type explainDNSFlags struct {
	host  string
	proxy bool
	vip   dnsFlags
}

func (x *explainDNSFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&x.host, "dns", "", "print what the DNS proxy (run --dns-listen) answers for this name, instead of explaining a request")
	fl.BoolVar(&x.proxy, "dns-proxy", false, "explain for a proxy run with --dns-listen, where address-less TCP hosts have allocated addresses (implied by --dns and --dns-vip-state)")
	fl.StringVar(&x.vip.vipState, "dns-vip-state", "", "the run's --dns-vip-state file, read (never written) so the addresses are the run's")
	fl.StringVar(&x.vip.vipCIDR, "dns-vip-cidr", vip.DefaultV4.String(), "the run's --dns-vip-cidr")
	fl.StringVar(&x.vip.vipCIDR6, "dns-vip-cidr-v6", vip.DefaultV6.String(), "the run's --dns-vip-cidr-v6")
}

// compileOptions allocate as the run would, from its state file when given; none when the
// DNS proxy is not asked for.
func (x *explainDNSFlags) compileOptions() ([]compile.Option, error) {
	if x.host == "" && !x.proxy && x.vip.vipState == "" {
		return nil, nil
	}
	alloc, err := newAllocator(&x.vip)
	if err != nil {
		return nil, err
	}
	if x.vip.vipState != "" {
		prior, err := vip.LoadState(x.vip.vipState)
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		alloc.Restore(prior)
	}
	return []compile.Option{compile.WithAutoAddresses(allocateFunc(alloc, "", nil))}, nil
}

// explainDNS prints what the DNS proxy of a workload in src's namespace answers for x.host.
func (x *explainDNSFlags) explainDNS(cmd *cobra.Command, src *sourceFlags, pf *policyFlags, output string) error {
	if output != "text" && output != "json" {
		return usageError("-o must be text or json, not %q", output)
	}
	root, labels, err := pf.parse()
	if err != nil {
		return err
	}
	opts, err := x.compileOptions()
	if err != nil {
		return err
	}
	res, err := src.compile(cmd, 1, opts...)
	if err != nil {
		return err
	}
	for _, d := range res.Diagnostics {
		if d.Level == diag.Error {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
	}
	_, search, _ := upstreams("127.0.0.1:53") // only the search domains are wanted
	rep := explain.ExplainDNS(res.Snapshot, registry.ScopeProxy{Namespace: src.namespace, Labels: labels, RootNamespace: root}, search, x.host)
	if output == "json" {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return &exitError{code: 2, err: err}
		}
		return nil
	}
	rep.WriteText(cmd.OutOrStdout())
	return nil
}

// adminStatus serves /dns; nil when the DNS proxy is off.
func (d *dnsProxy) adminStatus() func() admin.DNSJSON {
	if d == nil {
		return nil
	}
	return func() admin.DNSJSON {
		v4, v6 := d.alloc.Ranges()
		out := admin.DNSJSON{Listen: d.ln.Addr().String(), V4Range: v4.String(), V6Range: v6.String(), Stats: d.counters()}
		out.ExhaustedV4, out.ExhaustedV6 = d.alloc.Exhausted()
		for _, h := range d.alloc.Holdings() {
			a := admin.DNSAllocationJSON{Host: h.Host, InUse: h.Current}
			if h.Addrs.V4.IsValid() {
				a.V4 = h.Addrs.V4.String()
			}
			if h.Addrs.V6.IsValid() {
				a.V6 = h.Addrs.V6.String()
			}
			out.Allocations = append(out.Allocations, a)
		}
		return out
	}
}

// counters are the DNS proxy's counters by the names the metrics give them, without the prefix.
func (d *dnsProxy) counters() map[string]uint64 {
	var st dnsproxy.Stats
	if srv := d.srv.Load(); srv != nil {
		st = srv.Stats()
	}
	return map[string]uint64{
		"queries_registry": st.Registry, "queries_cached": st.Cached, "queries_forwarded": st.Forwarded,
		"upstream_failures": st.UpstreamFailures, "upstream_tcp_retries": st.TCPRetries,
		"truncated": st.Truncated, "inflight_rejected": st.InFlightRejected, "malformed": st.Malformed,
		"tcp_refused": st.TCPRefused, "cache_evictions": st.CacheEvictions,
		"cache_entries": uint64(st.CacheEntries), "hosts": uint64(st.Hosts),
	}
}

// registerMetrics adds the meshentry_dns_proxy_* and meshentry_dns_vip_* metrics (the
// resolver's own are meshentry_dns_*) to reg.
func (d *dnsProxy) registerMetrics(reg *prometheus.Registry) error {
	return reg.Register(dnsCollector{d: d})
}

// dnsCollector reads the DNS proxy's counters at scrape time.
type dnsCollector struct{ d *dnsProxy }

var dnsDescs = map[string]*prometheus.Desc{
	"queries":              prometheus.NewDesc("meshentry_dns_proxy_queries_total", "DNS queries answered, by where the answer came from: registry, cache or upstream.", []string{"answer"}, nil),
	"upstream_failures":    prometheus.NewDesc("meshentry_dns_proxy_upstream_failures_total", "Forwarded DNS queries no upstream server answered (SERVFAIL sent).", nil, nil),
	"upstream_tcp_retries": prometheus.NewDesc("meshentry_dns_proxy_upstream_tcp_retries_total", "Truncated upstream UDP answers asked again over TCP.", nil, nil),
	"truncated":            prometheus.NewDesc("meshentry_dns_proxy_truncated_total", "UDP answers truncated to the client's size, with TC set.", nil, nil),
	"inflight_rejected":    prometheus.NewDesc("meshentry_dns_proxy_inflight_rejected_total", "DNS queries answered SERVFAIL because --dns-max-inflight were waiting on the upstream.", nil, nil),
	"malformed":            prometheus.NewDesc("meshentry_dns_proxy_malformed_total", "DNS messages answered FORMERR or NOTIMP, or dropped as responses.", nil, nil),
	"tcp_refused":          prometheus.NewDesc("meshentry_dns_proxy_tcp_refused_total", "DNS-over-TCP connections closed because --dns-max-tcp-connections were open.", nil, nil),
	"cache_evictions":      prometheus.NewDesc("meshentry_dns_proxy_cache_evictions_total", "Live answers dropped from the DNS cache because it held --dns-cache-size.", nil, nil),
	"cache_entries":        prometheus.NewDesc("meshentry_dns_proxy_cache_entries", "Answers in the DNS cache.", nil, nil),
	"hosts":                prometheus.NewDesc("meshentry_dns_proxy_hosts", "Names the DNS proxy answers from the registry.", nil, nil),
	"vip_allocations":      prometheus.NewDesc("meshentry_dns_vip_allocations", "Hosts holding allocated addresses, those that left the config included.", nil, nil),
	"vip_exhausted":        prometheus.NewDesc("meshentry_dns_vip_exhausted_total", "Times a host got no allocated address because the range was full, by family.", []string{"family"}, nil),
}

// Describe implements prometheus.Collector.
func (c dnsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range dnsDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c dnsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(dnsDescs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(dnsDescs[name], prometheus.GaugeValue, v)
	}
	ex4, ex6 := c.d.alloc.Exhausted()
	counter("vip_exhausted", ex4, "ipv4")
	counter("vip_exhausted", ex6, "ipv6")
	gauge("vip_allocations", float64(len(c.d.alloc.Holdings())))
	srv := c.d.srv.Load()
	if srv == nil {
		return // not serving yet
	}
	st := srv.Stats()
	counter("queries", st.Registry, "registry")
	counter("queries", st.Cached, "cache")
	counter("queries", st.Forwarded, "upstream")
	counter("upstream_failures", st.UpstreamFailures)
	counter("upstream_tcp_retries", st.TCPRetries)
	counter("truncated", st.Truncated)
	counter("inflight_rejected", st.InFlightRejected)
	counter("malformed", st.Malformed)
	counter("tcp_refused", st.TCPRefused)
	counter("cache_evictions", st.CacheEvictions)
	gauge("cache_entries", float64(st.CacheEntries))
	gauge("hosts", float64(st.Hosts))
}

// dnsTable prints /dns for `proxy-config dns`: one row per allocated host.
func dnsTable(w io.Writer, bodies [][]byte) error {
	var d admin.DNSJSON
	if err := decode(bodies[0], "/dns", &d); err != nil {
		return err
	}
	fmt.Fprintf(w, "# DNS proxy on %s; ranges %s and %s; exhausted: %d IPv4, %d IPv6\n", d.Listen, d.V4Range, d.V6Range, d.ExhaustedV4, d.ExhaustedV6)
	fmt.Fprintln(w, "HOST\tIPV4\tIPV6\tIN USE")
	for _, a := range d.Allocations {
		inUse := "no"
		if a.InUse {
			inUse = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Host, dash(a.V4), dash(a.V6), inUse)
	}
	return nil
}
