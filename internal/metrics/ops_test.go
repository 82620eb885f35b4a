package metrics

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/telemetry"
)

func TestOpsAreReadAtScrapeTime(t *testing.T) {
	t.Parallel()
	loaded := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var ejections atomic.Uint64
	m := newMetrics(t, Config{Ops: Ops{
		Reloads:              func() ReloadStatus { return ReloadStatus{Accepted: 7, Refused: 2, Version: 8, LoadedAt: loaded} },
		DNS:                  func() resolve.Stats { return resolve.Stats{Queries: 40, Failures: 3, CacheHits: 900} },
		Ejections:            ejections.Load,
		Refused:              func() map[string]uint64 { return map[string]uint64{"connection_limit": 5, "no_route": 10} },
		OpenConnections:      func() int64 { return 12 },
		AccessLogDropped:     func() uint64 { return 4 },
		AdminBusy:            func() uint64 { return 6 },
		TLSHandshakeFailures: func() uint64 { return 8 },
		AccessLogWriteErrors: func() uint64 { return 2 },
		Routes: func() RouteStats {
			return RouteStats{Retries: 11, RetryBodyTooLarge: 1, MirrorsSent: 30, MirrorsDropped: 3, Parked: 4, BodiesStreamed: 5, PoolIdleFull: 9}
		},
		Now: func() time.Time { return loaded.Add(90 * time.Second) },
	}})
	scrape := serve(t, m)
	ejections.Store(1)
	m.Request(&telemetry.Request{Status: 502, Flags: telemetry.NoRoute})
	m.Request(&telemetry.Request{Status: 503, Flags: telemetry.NoHealthyUpstream | telemetry.UpstreamConnectFailure, Service: apiSvc})
	m.ConnClosed(&telemetry.Conn{Flags: telemetry.NoRoute})
	m.Request(&telemetry.Request{Status: 504, Flags: telemetry.UpstreamTimeout, Service: apiSvc})
	ejections.Store(3)
	fams := scrape()
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{name: "accepted reloads", metric: "meshentry_config_reloads_total", labels: map[string]string{"result": "accepted"}, want: 7},
		{name: "refused reloads", metric: "meshentry_config_reloads_total", labels: map[string]string{"result": "refused"}, want: 2},
		{name: "the snapshot version", metric: "meshentry_snapshot_version", want: 8},
		{name: "the snapshot age in seconds", metric: "meshentry_snapshot_age_seconds", want: 90},
		{name: "DNS questions", metric: "meshentry_dns_queries_total", want: 40},
		{name: "DNS failures", metric: "meshentry_dns_failures_total", want: 3},
		{name: "DNS cache hits", metric: "meshentry_dns_cache_hits_total", want: 900},
		{name: "ejections as they are when scraped", metric: "meshentry_endpoint_ejections_total", want: 3},
		{name: "refusals without a route are the proxy's count, not also the records'", metric: "meshentry_requests_refused_total", labels: map[string]string{"reason": "no_route"}, want: 10},
		{name: "refusals for no healthy upstream, from a record's flags", metric: "meshentry_requests_refused_total", labels: map[string]string{"reason": "no_healthy_upstream"}, want: 1},
		{name: "a reason only the proxy counts", metric: "meshentry_requests_refused_total", labels: map[string]string{"reason": "connection_limit"}, want: 5},
		{name: "a timeout is not a refusal", metric: "meshentry_requests_refused_total", want: 16},
		{name: "open downstream connections", metric: "meshentry_downstream_connections_open", want: 12},
		{name: "dropped access-log lines", metric: "meshentry_access_log_dropped_total", want: 4},
		{name: "failed access-log writes", metric: "meshentry_access_log_write_errors_total", want: 2},
		{name: "admin dumps refused as busy", metric: "meshentry_admin_busy_total", want: 6},
		{name: "failed upstream TLS handshakes", metric: "meshentry_tls_handshake_failures_total", want: 8},
		{name: "VirtualService retries", metric: "meshentry_route_retries_total", want: 11},
		{name: "bodies too large to retry", metric: "meshentry_route_retry_body_too_large_total", want: 1},
		{name: "mirrored copies sent", metric: "meshentry_route_mirrors_total", labels: map[string]string{"result": "sent"}, want: 30},
		{name: "mirrored copies dropped", metric: "meshentry_route_mirrors_total", labels: map[string]string{"result": "dropped"}, want: 3},
		{name: "parked client connections", metric: "meshentry_http_connections_parked_total", want: 4},
		{name: "request bodies streamed", metric: "meshentry_http_request_bodies_streamed_total", want: 5},
		{name: "pooled connections closed at the idle limit", metric: "meshentry_upstream_pool_idle_full_total", want: 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fams.Sum(tt.metric, tt.labels); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
	if n := len(fams.Match("meshentry_requests_refused_total", map[string]string{"reason": "no_route"})); n != 1 {
		t.Errorf("no_route is in %d series, want 1", n)
	}
}

func TestRefusalsComeFromRecordsWithoutTheProxysCount(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{})
	scrape := serve(t, m)
	m.Request(&telemetry.Request{Status: 502, Flags: telemetry.NoRoute})
	m.ConnClosed(&telemetry.Conn{Flags: telemetry.NoRoute})
	m.Request(&telemetry.Request{Status: 503, Flags: telemetry.UpstreamOverflow, Service: apiSvc})
	fams := scrape()
	for reason, want := range map[string]float64{"no_route": 2, "overflow": 1, "no_healthy_upstream": 0, "protocol_error": 0} {
		if got := fams.Sum("meshentry_requests_refused_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("meshentry_requests_refused_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func TestOpsLeftOutWhenNotGiven(t *testing.T) {
	t.Parallel()
	fams := serve(t, newMetrics(t, Config{}))()
	for _, name := range []string{"meshentry_config_reloads_total", "meshentry_snapshot_version", "meshentry_snapshot_age_seconds",
		"meshentry_dns_queries_total", "meshentry_endpoint_ejections_total", "meshentry_downstream_connections_open", "meshentry_access_log_dropped_total", "meshentry_access_log_write_errors_total", "meshentry_admin_busy_total", "meshentry_tls_handshake_failures_total"} {
		if fams[name] != nil {
			t.Errorf("%s is served without a func to read it", name)
		}
	}
	for _, name := range []string{"meshentry_requests_refused_total", "meshentry_metrics_series_dropped_total", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s is missing", name)
		}
	}
}
