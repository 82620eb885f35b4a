package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/metrics"
	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/proxy"
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
	for _, args := range [][]string{{"--metrics-max-series", "-1"}, {"--metrics-cache-entries", "-1"}, {"--metrics-max-scrapes", "-5"}} {
		if _, err := newRunMetrics(metricsRunFlags(t, args...), metricsDeps{}); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestRunMetricsReadTheProxysRefusals(t *testing.T) {
	t.Parallel()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfgPath, []byte(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 1}}]
`), 0o644)
	res, err := compile.Paths([]string{cfgPath}, config.Options{Namespace: "default"}, 1)
	if err != nil || res.Errors() > 0 {
		t.Fatalf("compile: %v %v", err, res.Diagnostics)
	}
	r, err := resolve.New(resolve.Config{Server: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := proxy.New(proxy.Config{Resolver: r, MaxConnections: 16}, res.Snapshot)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.ServeForward(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	}()
	m, err := newRunMetrics(metricsRunFlags(t), metricsDeps{proxy: func() *proxy.Proxy { return p }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: ln.Addr().String()})}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	for range 2 {
		getStatus(t, client, "http://undeclared.example.com/", http.StatusBadGateway)
	}
	fams := metricstest.Scrape(t, srv.URL)
	if got := fams.Sum("meshentry_requests_refused_total", map[string]string{"reason": "no_route"}); got != 2 {
		t.Errorf("meshentry_requests_refused_total{reason=no_route} = %v, want 2", got)
	}
	// The client's keep-alive connection is still open.
	if got := fams.Sum("meshentry_downstream_connections_open", nil); got != 1 {
		t.Errorf("meshentry_downstream_connections_open = %v, want 1", got)
	}
}
