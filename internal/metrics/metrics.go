// Package metrics turns the proxy's telemetry records into Istio's standard metrics, adds
// meshentry's own, and serves them in the Prometheus text format. Everything lives on a registry
// of its own, so two Metrics in one process (tests, or a later multi-proxy binary) never collide.
package metrics

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// Defaults for the bounds in Config.
const (
	// DefaultMaxSeries bounds the label sets of each Istio metric family.
	DefaultMaxSeries = 10000
	// DefaultCacheEntries bounds the hot-path cache of resolved series.
	DefaultCacheEntries = 4096
	// DefaultMaxScrapes bounds the scrapes served at once.
	DefaultMaxScrapes = 4
)

// Source names this proxy in the source_* labels, as Istio names the workload its sidecar is in.
type Source struct {
	// Workload is source_workload; empty means "unknown".
	Workload string
	// Namespace is source_workload_namespace; empty means "default", the proxy's own default.
	Namespace string
	// App and Version are source_app and source_version (the pod's app and version labels in
	// Istio); empty means "unknown".
	App, Version string
	// Cluster is source_cluster; empty means "Kubernetes", Istio's default cluster ID.
	Cluster string
}

// Config sets up a Metrics.
type Config struct {
	// Source fills the source_* labels of every Istio metric.
	Source Source
	// MaxSeries caps the distinct label sets of each Istio metric family (0: DefaultMaxSeries);
	// a record that would open one more is dropped and counted in
	// meshentry_metrics_series_dropped_total.
	MaxSeries int
	// CacheEntries caps the hot-path cache from (service, code, flags, protocol) to resolved
	// series (0: DefaultCacheEntries); when full it is emptied and refilled, counted in
	// meshentry_metrics_cache_resets_total. Its keys are per-snapshot Service pointers, so
	// reloads leave stale keys behind that only a reset drops.
	CacheEntries int
	// MaxScrapes caps the scrapes served at once (0: DefaultMaxScrapes), since each walks every
	// series; one more gets 503, counted in promhttp_metric_handler_requests_total{code="503"}.
	MaxScrapes int
	// Ops reads meshentry's own counters at scrape time; nil funcs leave their metrics out.
	Ops Ops
}

// Metrics is a telemetry.Sink recording Istio's standard metrics, plus the collectors of
// meshentry's own; Handler serves them all.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler
	istio   istioVecs
	// source is the label values every series starts with, resolved once.
	source sourceLabels

	maxSeries, maxCache int
	// mu guards what resolving a new key touches: the label-set indexes and the cache sizes.
	mu        sync.Mutex
	httpCache seriesCache[httpKey, *httpSeries]
	tcpCache  seriesCache[tcpKey, *tcpSeries]

	seriesDropped atomic.Uint64
	cacheResets   atomic.Uint64
	refused       [len(refusalReasons)]atomic.Uint64
}

// New builds the metrics on a private registry, with the Go runtime and process collectors that
// every Prometheus target exposes.
func New(cfg Config) (*Metrics, error) {
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		source:    newSourceLabels(cfg.Source),
		maxSeries: cfg.MaxSeries,
		maxCache:  cfg.CacheEntries,
		httpCache: seriesCache[httpKey, *httpSeries]{byName: map[string]*httpSeries{}},
		tcpCache:  seriesCache[tcpKey, *tcpSeries]{byName: map[string]*tcpSeries{}},
	}
	if m.maxSeries <= 0 {
		m.maxSeries = DefaultMaxSeries
	}
	if m.maxCache <= 0 {
		m.maxCache = DefaultCacheEntries
	}
	m.istio = newIstioVecs()
	cs := append(m.istio.collectors(),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&opsCollector{ops: cfg.Ops, m: m},
	)
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	m.handler = Handler(m.reg, cfg.MaxScrapes)
	return m, nil
}

// Handler serves reg's metrics with at most maxScrapes scrapes at once (0: DefaultMaxScrapes);
// one more gets 503, counted in promhttp_metric_handler_requests_total{code="503"}.
func Handler(reg *prometheus.Registry, maxScrapes int) http.Handler {
	if maxScrapes <= 0 {
		maxScrapes = DefaultMaxScrapes
	}
	// InstrumentMetricHandler registers promhttp's own counters, which count the 503s.
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxScrapes,
	}))
}

// Handler serves every metric in the Prometheus text format (or OpenMetrics / protobuf when the
// scraper asks for it), for the admin API's /stats/prometheus.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry is the private registry, for tests and for callers that add collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

var _ telemetry.Sink = (*Metrics)(nil)
