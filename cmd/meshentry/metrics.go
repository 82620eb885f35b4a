package main

import (
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/metrics"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/resolve"
)

// metricsFlags name this proxy in the source_* labels of Istio's metrics and bound the series.
type metricsFlags struct {
	workload, app, version, cluster string
	maxSeries, cacheEntries         int
	maxScrapes                      int
	// istio records Istio's standard request and TCP metrics; off, only meshentry's own are kept.
	istio bool
}

func (m *metricsFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&m.workload, "workload", "unknown", "source_workload of Istio's metrics: the workload meshentry serves (Istio's pod workload name, such as a Deployment's name)")
	fl.StringVar(&m.app, "app", "", "source_app and source_canonical_service of the metrics (a pod's app label); empty: unknown, and the workload as canonical service")
	fl.StringVar(&m.version, "version", "", "source_version and source_canonical_revision of the metrics (a pod's version label); empty: unknown, and latest as revision")
	fl.StringVar(&m.cluster, "cluster", "Kubernetes", "source_cluster of the metrics (Istio's cluster ID, whose default is Kubernetes)")
	fl.BoolVar(&m.istio, "istio-metrics", true, "record Istio's standard metrics (istio_requests_total, istio_tcp_*, ...) for every request and connection; false keeps only meshentry's own metrics")
	fl.IntVar(&m.maxSeries, "metrics-max-series", metrics.DefaultMaxSeries, "label sets each Istio metric may have; records beyond are dropped and counted in meshentry_metrics_series_dropped_total")
	fl.IntVar(&m.maxScrapes, "metrics-max-scrapes", metrics.DefaultMaxScrapes, "scrapes of /stats/prometheus served at once; one more gets 503, counted in promhttp_metric_handler_requests_total{code=\"503\"}")
	fl.IntVar(&m.cacheEntries, "metrics-cache-entries", metrics.DefaultCacheEntries, "entries of the metrics' hot-path series cache; when full it is emptied, counted in meshentry_metrics_cache_resets_total")
}

// metricsDeps are what the metrics read at scrape time. Any may be nil, leaving its metrics out.
type metricsDeps struct {
	// proxy returns the proxy once it is made: the proxy takes the metrics as its sink, so it
	// comes after them.
	proxy    func() *proxy.Proxy
	resolver *resolve.Resolver
	// health must be the tracker in the proxy's Config.Health, the one that ejects.
	health *balance.Health
	// reloads is the config source's reload status.
	reloads func() metrics.ReloadStatus
	// accessLogDropped counts the access-log lines dropped, accessLogWriteErrors its failed writes.
	accessLogDropped, accessLogWriteErrors func() uint64
}

// newRunMetrics builds the metrics of `run` from its flags.
func newRunMetrics(f *runFlags, d metricsDeps) (*metrics.Metrics, error) {
	mf := &f.metrics
	if mf.maxSeries < 0 || mf.cacheEntries < 0 || mf.maxScrapes < 0 {
		return nil, usageError("--metrics-max-series, --metrics-cache-entries and --metrics-max-scrapes must not be negative (0 takes the default)")
	}
	// Zero (a runFlags made without its flags, as tests make them) takes the defaults.
	orDefault := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	orDefault(&mf.maxSeries, metrics.DefaultMaxSeries)
	orDefault(&mf.cacheEntries, metrics.DefaultCacheEntries)
	orDefault(&mf.maxScrapes, metrics.DefaultMaxScrapes)
	ops := metrics.Ops{Reloads: d.reloads, AccessLogDropped: d.accessLogDropped, AccessLogWriteErrors: d.accessLogWriteErrors,
		AdminBusy: f.admin.busy.Load}
	if d.resolver != nil {
		ops.DNS = d.resolver.Stats
	}
	if d.health != nil {
		ops.Ejections = d.health.Ejections
	}
	if d.proxy != nil {
		ops.TLSHandshakeFailures = func() uint64 {
			if p := d.proxy(); p != nil {
				return p.Stats().TLSHandshakeFailures
			}
			return 0
		}
		ops.Routes = func() metrics.RouteStats {
			p := d.proxy()
			if p == nil {
				return metrics.RouteStats{}
			}
			st := p.Stats()
			return metrics.RouteStats{Retries: st.RouteRetries, RetryBodyTooLarge: st.RetryBodyTooLarge,
				MirrorsSent: st.MirrorsSent, MirrorsDropped: st.MirrorsDropped,
				Parked: st.Parked, BodiesStreamed: st.BodiesStreamed, PoolIdleFull: st.PoolIdleFull}
		}
		ops.Refused = func() map[string]uint64 {
			p := d.proxy()
			if p == nil {
				return nil
			}
			sec := p.SecurityStats()
			return map[string]uint64{
				"no_route":         sec.Refused,
				"loop":             sec.Loops,
				"invalid_host":     sec.InvalidHosts,
				"connection_limit": p.Stats().RefusedAtCap,
			}
		}
	}
	// Only the connection cap counts open connections; -1 turns it off.
	if d.proxy != nil && f.limits.maxConnections >= 0 {
		ops.OpenConnections = func() int64 {
			if p := d.proxy(); p != nil {
				n, _ := p.OpenConnections()
				return n
			}
			return 0
		}
	}
	m, err := metrics.New(metrics.Config{
		Source: metrics.Source{
			Workload:  mf.workload,
			Namespace: f.src.namespace,
			App:       mf.app,
			Version:   mf.version,
			Cluster:   mf.cluster,
		},
		MaxSeries:    mf.maxSeries,
		CacheEntries: mf.cacheEntries,
		MaxScrapes:   mf.maxScrapes,
		Ops:          ops,
	})
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return m, nil
}
