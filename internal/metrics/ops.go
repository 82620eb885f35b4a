package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/resolve"
)

// ReloadStatus is what the config source reports about its reloads.
type ReloadStatus struct {
	// Accepted and Refused count reloads that swapped in a new snapshot and those refused whole.
	Accepted, Refused uint64
	// Version is the serving snapshot's version; LoadedAt is when it began serving.
	Version  uint64
	LoadedAt time.Time
}

// Ops reads meshentry's own counters when scraped, so nothing is counted twice: each func returns
// totals kept where the events happen. A nil func leaves its metrics out.
type Ops struct {
	// Reloads reports the config reloads (the config source's status).
	Reloads func() ReloadStatus
	// DNS reports the resolver's queries, failures and cache hits.
	DNS func() resolve.Stats
	// Ejections reports endpoints ejected by passive health checking since start.
	Ejections func() uint64
	// Refused reports refusals the proxy counts itself, by reason (say "connection_limit" for
	// connections closed at --max-connections). A reason it reports replaces the count read from
	// records' flags, because the proxy's counter also sees refusals no record reports, and
	// adding the two would count a refusal twice.
	Refused func() map[string]uint64
	// OpenConnections reports downstream connections open now.
	OpenConnections func() int64
	// AccessLogDropped reports access-log lines dropped because the writer was behind.
	AccessLogDropped func() uint64
	// AccessLogWriteErrors reports failed writes of the access log (a full disk, a reader of
	// stdout gone), whose lines are lost.
	AccessLogWriteErrors func() uint64
	// AdminBusy reports admin dumps refused because the admin API was serving its limit.
	AdminBusy func() uint64
	// TLSHandshakeFailures reports upstream TLS handshakes that failed (unknown CA, wrong
	// identity, expired certificate), each of which failed its connection.
	TLSHandshakeFailures func() uint64
	// Routes reports what VirtualService retry and mirror policies did.
	Routes func() RouteStats
	// Now is the clock for the snapshot age; nil means time.Now.
	Now func() time.Time
}

// RouteStats counts the work of VirtualService retry and mirror policies.
type RouteStats struct {
	// Retries counts tries beyond the first.
	Retries uint64
	// RetryBodyTooLarge counts request bodies sent once only: too large to be held for a retry
	// or a mirror.
	RetryBodyTooLarge uint64
	// MirrorsSent counts mirrored copies started; MirrorsDropped those dropped because the
	// mirrors in flight were at their limit.
	MirrorsSent, MirrorsDropped uint64
	// Parked, BodiesStreamed and PoolIdleFull are the HTTP engine's connection counters (see
	// proxy.Stats).
	Parked, BodiesStreamed, PoolIdleFull uint64
}

// opsCollector exposes Ops and the Metrics' own bounds as meshentry_* metrics.
type opsCollector struct {
	ops Ops
	m   *Metrics
}

var (
	descReloads       = opsDesc("meshentry_config_reloads_total", "Config reloads, by result: accepted (a new snapshot serves) or refused (the last good one kept serving).", "result")
	descVersion       = opsDesc("meshentry_snapshot_version", "Version of the snapshot serving now.")
	descAge           = opsDesc("meshentry_snapshot_age_seconds", "Seconds since the serving snapshot was loaded.")
	descDNSQueries    = opsDesc("meshentry_dns_queries_total", "DNS questions sent to the servers.")
	descDNSFailures   = opsDesc("meshentry_dns_failures_total", "DNS questions no server answered usefully.")
	descDNSHits       = opsDesc("meshentry_dns_cache_hits_total", "Lookups answered from the DNS cache.")
	descEjections     = opsDesc("meshentry_endpoint_ejections_total", "Endpoints ejected by passive health checking (outlier detection).")
	descRefused       = opsDesc("meshentry_requests_refused_total", "Requests and connections the proxy refused, by reason.", "reason")
	descOpen          = opsDesc("meshentry_downstream_connections_open", "Downstream connections open now.")
	descLogDropped    = opsDesc("meshentry_access_log_dropped_total", "Access-log lines dropped because the log writer was behind.")
	descSeriesDropped = opsDesc("meshentry_metrics_series_dropped_total", "Records left out of the Istio metrics because their label set would pass the series limit.")
	descCacheResets   = opsDesc("meshentry_metrics_cache_resets_total", "Times the metrics' series cache was full and emptied.")
	descTLSFailed     = opsDesc("meshentry_tls_handshake_failures_total", "Upstream TLS handshakes that failed (unknown CA, unexpected identity, expired certificate); each failed its connection, never falling back to plaintext.")
	descLogFailed     = opsDesc("meshentry_access_log_write_errors_total", "Access-log writes that failed (a full disk, a reader of stdout gone); their lines are lost.")
	descRetries       = opsDesc("meshentry_route_retries_total", "Tries beyond the first that VirtualService retry policies made.")
	descRetryTooLarge = opsDesc("meshentry_route_retry_body_too_large_total", "Request bodies of routes with retries or a mirror sent once only, being larger than --max-retry-body-bytes.")
	descMirrors       = opsDesc("meshentry_route_mirrors_total", "Mirrored copies of requests, by result: sent, or dropped because --max-mirrors were in flight.", "result")
	descParked        = opsDesc("meshentry_http_connections_parked_total", "Keep-alive client connections idle long enough to give back their request buffers and goroutine.")
	descBodyStreamed  = opsDesc("meshentry_http_request_bodies_streamed_total", "Request bodies that had not all arrived with their head, so were streamed upstream rather than sent with it.")
	descPoolIdleFull  = opsDesc("meshentry_upstream_pool_idle_full_total", "Reusable upstream connections closed because their upstream already held --max-idle-upstream-connections idle ones.")
	descAdminBusy     = opsDesc("meshentry_admin_busy_total", "Admin dumps (/config_dump, /registry, /routes, /clusters, the page) answered 503 because --admin-max-dumps were being served.")
)

func opsDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Describe sends every descriptor, including those of nil funcs, which Collect then leaves out;
// the registry allows a collector to collect fewer metrics than it describes.
func (c *opsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReloads, descVersion, descAge, descDNSQueries, descDNSFailures,
		descDNSHits, descEjections, descRefused, descOpen, descLogDropped, descSeriesDropped, descCacheResets, descLogFailed, descAdminBusy} {
		ch <- d
	}
}

// Collect reads every func once.
func (c *opsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	o := c.ops
	if o.Reloads != nil {
		st := o.Reloads()
		counter(descReloads, st.Accepted, "accepted")
		counter(descReloads, st.Refused, "refused")
		gauge(descVersion, float64(st.Version))
		if !st.LoadedAt.IsZero() {
			now := time.Now
			if o.Now != nil {
				now = o.Now
			}
			gauge(descAge, max(now().Sub(st.LoadedAt).Seconds(), 0))
		}
	}
	if o.DNS != nil {
		st := o.DNS()
		counter(descDNSQueries, st.Queries)
		counter(descDNSFailures, st.Failures)
		counter(descDNSHits, st.CacheHits)
	}
	if o.Ejections != nil {
		counter(descEjections, o.Ejections())
	}
	c.collectRefused(counter)
	if o.OpenConnections != nil {
		gauge(descOpen, float64(o.OpenConnections()))
	}
	if o.AccessLogDropped != nil {
		counter(descLogDropped, o.AccessLogDropped())
	}
	if o.AccessLogWriteErrors != nil {
		counter(descLogFailed, o.AccessLogWriteErrors())
	}
	if o.AdminBusy != nil {
		counter(descAdminBusy, o.AdminBusy())
	}
	if o.TLSHandshakeFailures != nil {
		counter(descTLSFailed, o.TLSHandshakeFailures())
	}
	if o.Routes != nil {
		st := o.Routes()
		counter(descRetries, st.Retries)
		counter(descRetryTooLarge, st.RetryBodyTooLarge)
		counter(descMirrors, st.MirrorsSent, "sent")
		counter(descMirrors, st.MirrorsDropped, "dropped")
		counter(descParked, st.Parked)
		counter(descBodyStreamed, st.BodiesStreamed)
		counter(descPoolIdleFull, st.PoolIdleFull)
	}
	counter(descSeriesDropped, c.m.seriesDropped.Load())
	counter(descCacheResets, c.m.cacheResets.Load())
}

// collectRefused merges the reasons read from records with those Ops.Refused reports, the
// proxy's count winning for a reason both have.
func (c *opsCollector) collectRefused(counter func(*prometheus.Desc, uint64, ...string)) {
	var own map[string]uint64
	if c.ops.Refused != nil {
		own = c.ops.Refused()
	}
	for i, r := range refusalReasons {
		if _, ok := own[r.reason]; !ok {
			counter(descRefused, c.m.refused[i].Load(), r.reason)
		}
	}
	for reason, n := range own {
		counter(descRefused, n, reason)
	}
}
