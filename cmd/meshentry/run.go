package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/admin"
	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/gopool"
	"github.com/meshentry/meshentry/internal/heapshrink"
	"github.com/meshentry/meshentry/internal/metrics"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/telemetry"
)

type runFlags struct {
	src           sourceFlags
	concurrency   concurrencyFlag
	listen        string
	adminAddr     string
	captureListen string
	locality      string
	network       string
	dnsServer     string
	policy        string
	logLevel      string
	// allowInvalid serves the valid documents when some are invalid, instead of refusing to start.
	allowInvalid bool
	limits       limitFlags
	metrics      metricsFlags
	drain        drainFlags
	admin        adminFlags
	reload       reloadFlags
	// proxyPolicy says who the proxy is when DestinationRules are looked up.
	proxyPolicy policyFlags
	accessLog   accessLogFlags
	inbound     inboundFlags
	identity    identityFlags
	dns         dnsFlags
	capture     captureRunFlags
	routes      routeFlags
	gateway     gatewayFlags
	forwardLoop forwardLoopFlags
	// configSource, when set, takes the config from an xDS server instead of -f.
	configSource configSourceFlags
	kube         kubeFlags
}

// limitFlags bound what one client or upstream may cost; the defaults are Envoy's.
type limitFlags struct {
	maxConnections    int
	maxHeaders        int
	maxHeaderBytes    int
	maxUpstreamConns  int
	maxIdleUpstream   int
	connectTimeout    time.Duration
	headerTimeout     time.Duration
	httpIdleTimeout   time.Duration
	streamIdleTimeout time.Duration
	tcpIdleTimeout    time.Duration
	idleRelease       time.Duration
	heapShrink        int
	poolIdle          int
	eventLoops        int
}

func (l *limitFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&l.maxConnections, "max-connections", 0, "downstream connections open at once across the forward and capture listeners; beyond it a connection is closed when accepted (0: a third of the descriptor limit, less 128; -1: no cap)")
	fl.IntVar(&l.maxHeaders, "max-headers", 100, "header fields in one request or response head (Envoy's max_headers_count); a request over it gets 431")
	fl.IntVar(&l.maxHeaderBytes, "max-header-bytes", 64<<10, "bytes in one request or response head, or trailer section")
	fl.IntVar(&l.maxUpstreamConns, "max-upstream-connections", 1024, "connections HTTP/2 client streams may hold open to one HTTP/1.1 upstream (Envoy's circuit breaker max_connections); streams beyond it wait up to --stream-idle-timeout, then get 503")
	fl.IntVar(&l.maxIdleUpstream, "max-idle-upstream-connections", 1024, "idle keep-alive connections kept per upstream for reuse (Envoy's max_connections); one more is closed when returned, and counted")
	fl.DurationVar(&l.connectTimeout, "connect-timeout", 5*time.Second, "one connect attempt to an upstream")
	fl.DurationVar(&l.headerTimeout, "header-timeout", 10*time.Second, "reading a request head, and the first request of a connection")
	fl.DurationVar(&l.httpIdleTimeout, "http-idle-timeout", time.Hour, "a keep-alive HTTP connection with no request in flight (Envoy's idle_timeout)")
	fl.DurationVar(&l.streamIdleTimeout, "stream-idle-timeout", 5*time.Minute, "any pause within one HTTP exchange or upgraded connection (Envoy's stream_idle_timeout); there is no timeout on the exchange as a whole")
	fl.DurationVar(&l.idleRelease, "http-idle-release", time.Second, "a keep-alive HTTP/1.1 client connection waiting this long for its next request parks: it gives back its buffers and grown stack until bytes arrive (counted in meshentry_http_connections_parked_total); 0 never parks")
	fl.IntVar(&l.heapShrink, "heap-shrink-bytes", heapshrink.DefaultThreshold, "once the memory the runtime holds grew by this many bytes in a burst that has ended (under 1/64 of it grown or allocated in the last 500 ms), the free heap is returned to the system at once rather than over minutes (at most every 10 s, as Envoy's shrink_heap; counted in meshentry_heap_shrinks_total); 0 never")
	fl.IntVar(&l.poolIdle, "goroutine-pool-idle", gopool.MaxIdle, "goroutines kept waiting, with the stacks they grew, to serve the next accepted connection or tunnel (each let go after 10 s unused; counted in meshentry_goroutine_pool_*); beyond it a finished one ends")
	fl.IntVar(&l.eventLoops, "event-loops", 0, "epoll event loops of each listener served on them (--forward-event-loop, --gateway-event-loop), each on a goroutine of its own (Envoy's --concurrency for those listeners); 0: one per CPU (GOMAXPROCS)")
	fl.DurationVar(&l.tcpIdleTimeout, "tcp-idle-timeout", time.Hour, "a CONNECT tunnel or captured TCP/TLS connection with no bytes either way (Envoy's tcp_proxy idle_timeout); 0 disables it")
}

// apply copies the limits into the proxy's config.
func (l *limitFlags) apply(cfg *proxy.Config) error {
	for name, d := range map[string]time.Duration{"connect-timeout": l.connectTimeout, "header-timeout": l.headerTimeout,
		"http-idle-timeout": l.httpIdleTimeout, "stream-idle-timeout": l.streamIdleTimeout} {
		if d <= 0 {
			return usageError("--%s must be positive, got %v", name, d)
		}
	}
	if l.poolIdle < 1 {
		return usageError("--goroutine-pool-idle must be at least 1, got %d", l.poolIdle)
	}
	if l.heapShrink < 0 {
		return usageError("--heap-shrink-bytes must not be negative, got %d", l.heapShrink)
	}
	if l.tcpIdleTimeout < 0 {
		return usageError("--tcp-idle-timeout must not be negative, got %v", l.tcpIdleTimeout)
	}
	if l.eventLoops < 0 {
		return usageError("--event-loops must not be negative, got %d", l.eventLoops)
	}
	cfg.EventLoops = l.eventLoops
	if l.maxHeaders <= 0 || l.maxHeaderBytes <= 0 || l.maxUpstreamConns <= 0 || l.maxIdleUpstream <= 0 {
		return usageError("--max-headers, --max-header-bytes, --max-upstream-connections and --max-idle-upstream-connections must be positive")
	}
	cfg.MaxIdleUpstreamConns = l.maxIdleUpstream
	cfg.MaxConnections = l.maxConnections
	cfg.ConnectTimeout = l.connectTimeout
	cfg.TCPIdleTimeout = l.tcpIdleTimeout
	if l.tcpIdleTimeout == 0 {
		cfg.TCPIdleTimeout = -1 // as Envoy reads 0s: never
	}
	cfg.HTTP.MaxHeaders = l.maxHeaders
	cfg.HTTP.MaxHeaderBytes = l.maxHeaderBytes
	cfg.HTTP.MaxUpstreamConns = l.maxUpstreamConns
	cfg.HTTP.HeaderReadTimeout = l.headerTimeout
	cfg.HTTP.IdleTimeout = l.httpIdleTimeout
	cfg.HTTP.StreamIdleTimeout = l.streamIdleTimeout
	cfg.HTTP.IdleRelease = l.idleRelease
	if l.idleRelease <= 0 {
		cfg.HTTP.IdleRelease = -1 // 0 on the command line: never
	}
	return nil
}

func newRunCommand() *cobra.Command { return newRunCommandFor(new(runFlags)) }

// newRunCommandFor builds `run` parsing its flags into f, so a test can parse real arguments
// (flags of every part included) and call runProxy with the result.
func newRunCommandFor(f *runFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run -f PATH...",
		Short: "Serve as the proxy: HTTP forward proxy and CONNECT, transparent capture, admin endpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.concurrency.apply(); err != nil {
				return err
			}
			ctx, stop := notifyDrain(cmd)
			defer stop()
			return runProxy(ctx, cmd, f, nil)
		},
	}
	f.src.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:15001", "forward proxy address (HTTP_PROXY/HTTPS_PROXY point here); empty disables it")
	fl.StringVar(&f.adminAddr, "admin", "127.0.0.1:15000", "admin API address (/ready, /config_dump, /clusters, the HTML page at /, ...); keep it on loopback, it has no authentication; empty disables it")
	fl.StringVar(&f.captureListen, "capture-listen", "", "address that iptables REDIRECTs captured traffic to, e.g. 0.0.0.0:15006")
	fl.StringVar(&f.locality, "locality", "", "this proxy's locality, region/zone/subzone")
	fl.StringVar(&f.network, "network", "", "this proxy's network")
	fl.StringVar(&f.dnsServer, "dns-server", "", "DNS server HOST:PORT for DNS endpoints (default: /etc/resolv.conf)")
	fl.StringVar(&f.policy, "outbound-policy", "REGISTRY_ONLY", "REGISTRY_ONLY refuses what no ServiceEntry declares; ALLOW_ANY passes it through")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.BoolVar(&f.allowInvalid, "allow-invalid", false, "serve the valid documents when some are invalid, logging the findings, instead of refusing to start")
	f.limits.register(fl)
	f.concurrency.register(fl)
	f.metrics.register(fl)
	f.drain.register(fl)
	f.admin.register(fl)
	f.reload.register(fl)
	f.proxyPolicy.register(fl)
	f.accessLog.register(fl)
	f.inbound.register(fl)
	f.identity.register(fl)
	f.dns.register(fl)
	f.capture.register(fl)
	f.routes.register(fl)
	f.gateway.register(fl)
	f.forwardLoop.register(fl)
	f.configSource.register(fl)
	f.kube.register(fl)
	return cmd
}

// runProxy serves until ctx ends or a listener fails (exit status 1). ready, when set, receives
// the bound addresses once listening (tests use it to learn the :0 ports).
func runProxy(ctx context.Context, cmd *cobra.Command, f *runFlags, ready func(map[string]net.Addr)) error {
	surviveBrokenPipes()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &runState{ctx: ctx, cmd: cmd, f: f}
	defer r.close()
	if err := r.load(); err != nil {
		return err
	}
	if err := r.start(); err != nil {
		return err
	}
	g := &serveGroup{ctx: ctx, cancel: cancel, log: r.log, out: cmd.OutOrStdout(), bound: map[string]net.Addr{}}
	adminSrv := r.serve(g)
	if ready != nil {
		ready(g.bound)
	}
	<-ctx.Done()
	return r.drain(g, adminSrv)
}

// proxyConfig reads the proxy's config from the flags, with a logger whose level the admin
// API's /logging may change live through the returned LevelVar.
func proxyConfig(cmd *cobra.Command, f *runFlags) (proxy.Config, *slog.LevelVar, error) {
	cfg := proxy.Config{Namespace: f.src.namespace, Locality: f.locality, Network: f.network}
	var err error
	if cfg.AllowAny, err = parsePolicy(f.policy); err != nil {
		return cfg, nil, err
	}
	if err := f.limits.apply(&cfg); err != nil {
		return cfg, nil, err
	}
	if err := f.routes.apply(&cfg); err != nil {
		return cfg, nil, err
	}
	if err := f.drain.validate(); err != nil {
		return cfg, nil, err
	}
	if cfg.RootNamespace, cfg.Labels, err = f.proxyPolicy.parse(); err != nil {
		return cfg, nil, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return cfg, nil, usageError("--log-level: %v", err)
	}
	levelVar := new(slog.LevelVar)
	levelVar.Set(level)
	cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: levelVar}))
	return cfg, levelVar, nil
}

// serveAdmin serves the admin API on ln in g, when there is one, and returns its server for the
// drain; nil when the admin API is off.
func serveAdmin(g *serveGroup, f *runFlags, ln net.Listener, w adminWiring) *http.Server {
	if ln == nil {
		return nil
	}
	warnIfExposed(w.log, ln.Addr())
	srv := admin.NewServer(adminConfig(f, w), admin.Timeouts{})
	g.serve("admin", ln, func(ln net.Listener) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return srv
}

// observe opens the access log and makes the metrics, both fed by the proxy's telemetry, and
// sets cfg.Health, which the metrics read ejections from. closeLog flushes the access log.
func observe(cmd *cobra.Command, f *runFlags, log *slog.Logger, cfg *proxy.Config, watcher configSource,
	p func() *proxy.Proxy) (mm *metrics.Metrics, closeLog func(), err error) {
	accessLog, closeLog, err := f.accessLog.open(cmd.OutOrStdout(), log)
	if err != nil {
		return nil, nil, err
	}
	cfg.Health = balance.NewHealth(balance.HealthConfig{})
	deps := metricsDeps{proxy: p, resolver: cfg.Resolver, health: cfg.Health,
		reloads: func() metrics.ReloadStatus {
			st := watcher.Status()
			return metrics.ReloadStatus{Accepted: st.Accepted, Refused: st.Refused, Version: st.Version, LoadedAt: st.LoadedAt}
		}}
	var sinks telemetry.Multi
	if accessLog != nil {
		deps.accessLogDropped, deps.accessLogWriteErrors = accessLog.Dropped, accessLog.WriteErrors
		sinks = append(sinks, accessLog)
	}
	if mm, err = newRunMetrics(f, deps); err != nil {
		closeLog()
		return nil, nil, err
	}
	if f.metrics.istio {
		sinks = append(sinks, mm)
	}
	switch len(sinks) {
	case 0:
	case 1:
		cfg.Telemetry = sinks[0] // no fan-out loop on the hot path for one sink
	default:
		cfg.Telemetry = sinks
	}
	return mm, closeLog, nil
}

// startupFindings refuses a config with errors before anything listens, as nginx -t, Caddy and
// HAProxy do, rather than serving with documents silently missing; allowInvalid serves the valid
// documents instead. Every finding is logged either way.
func startupFindings(cmd *cobra.Command, log *slog.Logger, res *compile.Result, allowInvalid bool) error {
	if n := res.Errors(); n > 0 && !allowInvalid {
		for _, d := range res.Diagnostics {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
		noun := "errors"
		if n == 1 {
			noun = "error"
		}
		return &exitError{code: 1, err: fmt.Errorf("config has %d %s, not serving (fix them, or pass --allow-invalid to serve the valid documents)", n, noun)}
	}
	for _, d := range res.Diagnostics {
		switch d.Level {
		case diag.Error:
			log.Error("document left out", "finding", d.String())
		case diag.Warning:
			log.Warn("config warning", "finding", d.String())
		default:
			log.Info("config note", "finding", d.String())
		}
	}
	return nil
}
