package main

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/metrics"
	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/telemetry"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// metricsRunFlags parses args as run's metrics flags over the defaults.
func metricsRunFlags(t *testing.T, args ...string) *runFlags {
	t.Helper()
	f := &runFlags{src: sourceFlags{namespace: "shop"}, limits: defaultLimits()}
	fl := pflag.NewFlagSet("run", pflag.ContinueOnError)
	f.metrics.register(fl)
	if err := fl.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRunMetricsTakeTheSourceLabelsFromFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want map[string]string
	}{
		{
			name: "flags name the workload, app, version and cluster",
			args: []string{"--workload", "checkout-v3", "--app", "checkout", "--version", "v3", "--cluster", "east"},
			want: map[string]string{"source_workload": "checkout-v3", "source_app": "checkout", "source_canonical_service": "checkout",
				"source_version": "v3", "source_canonical_revision": "v3", "source_cluster": "east", "source_workload_namespace": "shop"},
		},
		{
			name: "without flags the labels are Istio's defaults",
			want: map[string]string{"source_workload": "unknown", "source_app": "unknown", "source_canonical_service": "unknown",
				"source_version": "unknown", "source_canonical_revision": "latest", "source_cluster": "Kubernetes", "source_workload_namespace": "shop"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := newRunMetrics(metricsRunFlags(t, tt.args...), metricsDeps{})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(m.Handler())
			defer srv.Close()
			m.Request(&telemetry.Request{Status: 200, Service: &telemetry.Service{Host: "api.example.com", Name: "api.example.com", Namespace: "shop"}})
			if got := metricstest.Scrape(t, srv.URL).Sum("istio_requests_total", tt.want); got != 1 {
				t.Errorf("istio_requests_total%v = %v, want 1", tt.want, got)
			}
		})
	}
}

func TestRunMetricsReadTheResolverAndHealth(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	dns.Set("api.example.com", 300, "10.0.0.1")
	r, err := resolve.New(resolve.Config{Server: dns.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	health := balance.NewHealth(balance.HealthConfig{ConsecutiveFailures: 1})
	m, err := newRunMetrics(metricsRunFlags(t), metricsDeps{resolver: r, health: health,
		reloads: func() metrics.ReloadStatus { return metrics.ReloadStatus{Accepted: 1, Version: 2} }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	r.Lookup(context.Background(), "api.example.com")
	r.Lookup(context.Background(), "api.example.com")
	health.ReportFailure("10.0.0.1:443")
	fams := metricstest.Scrape(t, srv.URL)
	for name, want := range map[string]float64{
		"meshentry_dns_queries_total":        2, // A and AAAA
		"meshentry_dns_cache_hits_total":     1,
		"meshentry_endpoint_ejections_total": 1,
		"meshentry_snapshot_version":         2,
	} {
		if got := fams.Sum(name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestRunMetricsRefuseBadBounds(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--metrics-max-series", "0"}, {"--metrics-cache-entries", "-1"}} {
		if _, err := newRunMetrics(metricsRunFlags(t, args...), metricsDeps{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
