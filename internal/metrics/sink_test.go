package metrics

import (
	"maps"
	"math"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/telemetry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// serve starts the real handler on a loopback port and returns a scrape of it.
func serve(t *testing.T, m *Metrics) func() metricstest.Families {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return func() metricstest.Families { return metricstest.Scrape(t, srv.URL) }
}

func newMetrics(t *testing.T, cfg Config) *Metrics {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var (
	apiSvc = &telemetry.Service{Host: "api.example.com", Name: "api.example.com", Namespace: "shop", Cluster: "outbound|443||api.example.com"}
	dbSvc  = &telemetry.Service{Host: "db.example.com", Name: "db.example.com", Namespace: "shop", Cluster: "outbound|5432||db.example.com"}
)

func TestRequestSeriesCarryIstioLabels(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{Source: Source{Workload: "checkout", Namespace: "shop", App: "checkout", Version: "v2"}})
	scrape := serve(t, m)
	m.Request(&telemetry.Request{Status: 200, Service: apiSvc, Duration: time.Millisecond})
	fams := scrape()
	got := fams.Match("istio_requests_total", nil)
	if len(got) != 1 {
		t.Fatalf("%d series of istio_requests_total, want 1", len(got))
	}
	want := map[string]string{
		"reporter":                       "source",
		"source_workload":                "checkout",
		"source_canonical_service":       "checkout",
		"source_canonical_revision":      "v2",
		"source_workload_namespace":      "shop",
		"source_principal":               "unknown",
		"source_app":                     "checkout",
		"source_version":                 "v2",
		"source_cluster":                 "Kubernetes",
		"destination_workload":           "unknown",
		"destination_workload_namespace": "unknown",
		"destination_principal":          "unknown",
		"destination_app":                "unknown",
		"destination_version":            "unknown",
		"destination_service":            "api.example.com",
		"destination_service_name":       "api.example.com",
		"destination_service_namespace":  "shop",
		"destination_canonical_service":  "unknown",
		"destination_canonical_revision": "unknown",
		"destination_cluster":            "unknown",
		"request_protocol":               "http",
		"response_code":                  "200",
		"grpc_response_status":           "",
		"response_flags":                 "-",
		"connection_security_policy":     "unknown",
	}
	if gotLabels := metricstest.Labels(got[0]); !maps.Equal(gotLabels, want) {
		t.Errorf("labels\n got %v\nwant %v", gotLabels, want)
	}
	for _, name := range []string{"istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"} {
		if h := fams.Match(name, want); len(h) != 1 || metricstest.Labels(h[0])["response_code"] != "200" {
			t.Errorf("%s has %d series with the request's labels, want 1", name, len(h))
		}
	}
}

func TestSourceLabelsDefaultAsIstioWritesThem(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{})
	scrape := serve(t, m)
	m.Request(&telemetry.Request{Status: 200, Service: apiSvc})
	want := map[string]string{
		"source_workload": "unknown", "source_canonical_service": "unknown", "source_canonical_revision": "latest",
		"source_workload_namespace": "default", "source_app": "unknown", "source_version": "unknown",
		"source_cluster": "Kubernetes",
	}
	if n := scrape().Sum("istio_requests_total", want); n != 1 {
		t.Errorf("istio_requests_total with the default source labels = %v, want 1", n)
	}
}

func TestRequestsAreCountedBySeries(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{})
	scrape := serve(t, m)
	reloaded := *apiSvc // the same service port in the next snapshot: a new pointer, the same labels
	records := []telemetry.Request{
		{Status: 200, Service: apiSvc}, {Status: 200, Service: apiSvc}, {Status: 200, Service: &reloaded},
		{Status: 502, Flags: telemetry.UpstreamConnectFailure | telemetry.RetriesExhausted, Service: apiSvc},
		{Status: 502, Flags: telemetry.NoRoute},
		{Status: 200, Service: dbSvc},
		{Status: 0, Flags: telemetry.DownstreamClosed, Service: dbSvc},
	}
	for i := range records {
		m.Request(&records[i])
	}
	fams := scrape()
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{name: "three 200s to one service, one of them after a reload", labels: map[string]string{"destination_service": "api.example.com", "response_code": "200"}, want: 3},
		{name: "a connect failure keeps its flags in Envoy's order", labels: map[string]string{"destination_service": "api.example.com", "response_code": "502", "response_flags": "UF,URX"}, want: 1},
		{name: "a request refused before routing has an unknown destination", labels: map[string]string{"destination_service": "unknown", "destination_service_namespace": "unknown", "response_code": "502", "response_flags": "NR"}, want: 1},
		{name: "a request with no response is code 0", labels: map[string]string{"destination_service": "db.example.com", "response_code": "0", "response_flags": "DC"}, want: 1},
		{name: "every request is counted once", labels: nil, want: float64(len(records))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fams.Sum("istio_requests_total", tt.labels); got != tt.want {
				t.Errorf("istio_requests_total%v = %v, want %v", tt.labels, got, tt.want)
			}
		})
	}
	if n := len(fams.Match("istio_requests_total", nil)); n != 5 {
		t.Errorf("%d series, want 5 (the reloaded service shares its series)", n)
	}
}

func TestHistogramsUseIstioBuckets(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{})
	scrape := serve(t, m)
	for _, r := range []telemetry.Request{
		{Status: 200, Service: apiSvc, Duration: 300 * time.Microsecond, RequestBytes: 0, ResponseBytes: 1},
		{Status: 200, Service: apiSvc, Duration: 3 * time.Millisecond, RequestBytes: 100, ResponseBytes: 4096},
		{Status: 200, Service: apiSvc, Duration: 7 * time.Second, RequestBytes: 2 << 20, ResponseBytes: 5 << 30},
	} {
		m.Request(&r)
	}
	fams := scrape()
	tests := []struct {
		name    string
		family  string
		sum     float64
		buckets map[float64]uint64 // cumulative counts at chosen upper bounds
	}{
		{name: "durations are milliseconds in Envoy's buckets", family: "istio_request_duration_milliseconds",
			sum: 0.3 + 3 + 7000, buckets: map[float64]uint64{0.5: 1, 1: 1, 5: 2, 5000: 2, 10000: 3, 3600000: 3}},
		{name: "request sizes are bytes in the same buckets", family: "istio_request_bytes",
			sum: 100 + 2<<20, buckets: map[float64]uint64{0.5: 1, 100: 2, 600000: 2, 3600000: 3}},
		{name: "response sizes past the last bucket count only in +Inf", family: "istio_response_bytes",
			sum: 1 + 4096 + 5<<30, buckets: map[float64]uint64{0.5: 0, 1: 1, 5000: 2, 3600000: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fams.Match(tt.family, map[string]string{"response_code": "200"})
			if len(got) != 1 {
				t.Fatalf("%d series, want 1", len(got))
			}
			h := got[0].GetHistogram()
			if h.GetSampleCount() != 3 || h.GetSampleSum() != tt.sum {
				t.Errorf("count %d sum %v, want 3 and %v", h.GetSampleCount(), h.GetSampleSum(), tt.sum)
			}
			var bounds []float64
			for _, b := range h.GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
				if want, ok := tt.buckets[b.GetUpperBound()]; ok && b.GetCumulativeCount() != want {
					t.Errorf("le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
				}
			}
			wantBounds := append(slices.Clone(istioBuckets), math.Inf(1))
			if !slices.Equal(bounds, wantBounds) {
				t.Errorf("bucket bounds %v, want Istio's %v", bounds, wantBounds)
			}
			if last := h.GetBucket()[len(h.GetBucket())-1]; last.GetCumulativeCount() != 3 {
				t.Errorf("le=+Inf: %d, want 3", last.GetCumulativeCount())
			}
		})
	}
}

func TestTCPConnectionsAndBytes(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{})
	scrape := serve(t, m)
	tunnel := &telemetry.Conn{Service: dbSvc, UpstreamHost: "10.0.0.5:5432"}
	m.ConnOpened(tunnel)
	tunnel.Received, tunnel.Sent, tunnel.Duration = 1500, 1<<20, time.Second
	m.ConnClosed(tunnel)
	idle := &telemetry.Conn{Service: dbSvc, UpstreamHost: "10.0.0.5:5432"}
	m.ConnOpened(idle)
	idle.Received, idle.Sent, idle.Flags = 7, 9, telemetry.DurationTimeout
	m.ConnClosed(idle)
	refused := &telemetry.Conn{Flags: telemetry.UpstreamConnectFailure, Service: dbSvc}
	m.ConnClosed(refused)
	fams := scrape()
	db := map[string]string{"destination_service": "db.example.com", "request_protocol": "tcp"}
	tests := []struct {
		name   string
		family string
		labels map[string]string
		want   float64
	}{
		{name: "every connection is counted opened, including one that never got an upstream", family: "istio_tcp_connections_opened_total", labels: db, want: 3},
		{name: "every connection is counted closed", family: "istio_tcp_connections_closed_total", labels: db, want: 3},
		{name: "an idle timeout is in the close's flags", family: "istio_tcp_connections_closed_total", labels: map[string]string{"response_flags": "DT"}, want: 1},
		{name: "a failed connect is in the flags of its open and close", family: "istio_tcp_connections_opened_total", labels: map[string]string{"response_flags": "UF"}, want: 1},
		{name: "bytes sent are summed exactly", family: "istio_tcp_sent_bytes_total", labels: db, want: 1<<20 + 9},
		{name: "bytes received are summed exactly", family: "istio_tcp_received_bytes_total", labels: db, want: 1500 + 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fams.Sum(tt.family, tt.labels); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.family, tt.labels, got, tt.want)
			}
		})
	}
	for _, s := range fams.Match("istio_tcp_sent_bytes_total", nil) {
		if l := metricstest.Labels(s); l["response_code"] != "" || l["grpc_response_status"] != "" {
			t.Errorf("a TCP series has HTTP labels: %v", l)
		}
	}
}

func TestConcurrentRecordsAreAllCounted(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{CacheEntries: 3})
	scrape := serve(t, m)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Each worker has its own Service pointers, as after reloads, so the small cache
			// keeps being emptied while others read it.
			svc := *apiSvc
			for i := range each {
				m.Request(&telemetry.Request{Status: 200 + i%2, Service: &svc, ResponseBytes: int64(w)})
				m.ConnClosed(&telemetry.Conn{Service: &svc, Sent: 2})
			}
		})
	}
	wg.Wait()
	fams := scrape()
	if got := fams.Sum("istio_requests_total", nil); got != workers*each {
		t.Errorf("istio_requests_total = %v, want %d", got, workers*each)
	}
	if got := fams.Sum("istio_tcp_sent_bytes_total", nil); got != 2*workers*each {
		t.Errorf("istio_tcp_sent_bytes_total = %v, want %d", got, 2*workers*each)
	}
	if n := len(fams.Match("istio_requests_total", nil)); n != 2 {
		t.Errorf("%d series, want 2", n)
	}
}

func TestNegativeValuesCountAsZero(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{})
	scrape := serve(t, m)
	m.Request(&telemetry.Request{Status: 200, Service: apiSvc, Duration: -time.Second, RequestBytes: -5, ResponseBytes: -1})
	m.ConnClosed(&telemetry.Conn{Service: dbSvc, Sent: -3, Received: -4})
	fams := scrape()
	for _, name := range []string{"istio_request_duration_milliseconds", "istio_request_bytes", "istio_response_bytes"} {
		h := fams.Match(name, nil)
		if len(h) != 1 || h[0].GetHistogram().GetSampleCount() != 1 || h[0].GetHistogram().GetSampleSum() != 0 {
			t.Errorf("%s: %v, want one sample summing 0", name, h)
		}
	}
	for _, name := range []string{"istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total"} {
		if got := fams.Sum(name, nil); got != 0 {
			t.Errorf("%s = %v, want 0", name, got)
		}
	}
}
