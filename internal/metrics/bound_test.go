package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/telemetry"
)

func TestTheSeriesCacheStaysWithinItsCap(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{CacheEntries: 4})
	scrape := serve(t, m)
	// Twenty snapshots' worth of one service port: twenty keys, one label set.
	for range 20 {
		svc := *apiSvc
		m.Request(&telemetry.Request{Status: 200, Service: &svc})
		m.Request(&telemetry.Request{Status: 200, Service: &svc})
	}
	fams := scrape()
	if got := fams.Sum("istio_requests_total", nil); got != 40 {
		t.Errorf("istio_requests_total = %v, want 40", got)
	}
	// Keys 5, 9, 13 and 17 each found the cache full.
	if got := fams.Sum("meshentry_metrics_cache_resets_total", nil); got != 4 {
		t.Errorf("meshentry_metrics_cache_resets_total = %v, want 4", got)
	}
	m.mu.Lock()
	cached := m.httpCache.hotLen
	m.mu.Unlock()
	if cached > 4 {
		t.Errorf("%d keys cached, over the cap of 4", cached)
	}
}

func TestLabelSetsBeyondMaxSeriesAreDroppedAndCounted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxSeries   int
		codes       []int
		wantSeries  int
		wantCounted float64
		wantDropped float64
	}{
		{name: "label sets within the cap are all kept", maxSeries: 3, codes: []int{200, 201, 202, 200}, wantSeries: 3, wantCounted: 4},
		{name: "a label set past the cap is dropped every time it comes", maxSeries: 2, codes: []int{200, 201, 202, 202, 200}, wantSeries: 2, wantCounted: 3, wantDropped: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMetrics(t, Config{MaxSeries: tt.maxSeries})
			scrape := serve(t, m)
			for _, code := range tt.codes {
				m.Request(&telemetry.Request{Status: code, Service: apiSvc})
			}
			fams := scrape()
			if n := len(fams.Match("istio_requests_total", nil)); n != tt.wantSeries {
				t.Errorf("%d series, want %d", n, tt.wantSeries)
			}
			if got := fams.Sum("istio_requests_total", nil); got != tt.wantCounted {
				t.Errorf("istio_requests_total = %v, want %v", got, tt.wantCounted)
			}
			if got := fams.Sum("meshentry_metrics_series_dropped_total", nil); got != tt.wantDropped {
				t.Errorf("meshentry_metrics_series_dropped_total = %v, want %v", got, tt.wantDropped)
			}
		})
	}
}

func TestTCPSeriesHaveTheirOwnCap(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{MaxSeries: 1})
	scrape := serve(t, m)
	m.Request(&telemetry.Request{Status: 200, Service: apiSvc})
	m.ConnOpened(&telemetry.Conn{Service: dbSvc, UpstreamHost: "10.0.0.5:5432"})
	m.ConnOpened(&telemetry.Conn{Service: apiSvc, UpstreamHost: "10.0.0.6:443"})
	fams := scrape()
	if got := fams.Sum("istio_tcp_connections_opened_total", nil); got != 1 {
		t.Errorf("istio_tcp_connections_opened_total = %v, want 1", got)
	}
	if got := fams.Sum("meshentry_metrics_series_dropped_total", nil); got != 1 {
		t.Errorf("meshentry_metrics_series_dropped_total = %v, want 1", got)
	}
}

func TestRecordingARequestDoesNotAllocate(t *testing.T) {
	m := newMetrics(t, Config{})
	r := &telemetry.Request{Status: 200, Service: apiSvc, Duration: 3 * time.Millisecond, RequestBytes: 10, ResponseBytes: 900}
	c := &telemetry.Conn{Service: dbSvc, UpstreamHost: "10.0.0.5:5432", Sent: 10, Received: 20}
	m.Request(r)
	m.ConnOpened(c)
	m.ConnClosed(c)
	for name, f := range map[string]func(){
		"Request":    func() { m.Request(r) },
		"ConnOpened": func() { m.ConnOpened(c) },
		"ConnClosed": func() { m.ConnClosed(c) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s allocates %v times per record", name, n)
		}
	}
}

func BenchmarkRecordRequest(b *testing.B) {
	m, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	// A realistic spread: a few services and statuses, so lookups are not all one key.
	var records []telemetry.Request
	for i := range 8 {
		svc := &telemetry.Service{Host: fmt.Sprintf("svc%d.example.com", i), Name: fmt.Sprintf("svc%d.example.com", i), Namespace: "default"}
		for _, code := range []int{200, 404, 503} {
			records = append(records, telemetry.Request{Status: code, Service: svc, Duration: time.Duration(i+1) * time.Millisecond, RequestBytes: 100, ResponseBytes: 4000})
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Request(&records[i%len(records)])
			i++
		}
	})
}

// blockingCollector holds every Collect until release is closed, keeping a scrape in flight.
type blockingCollector struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockingCollector) Describe(chan<- *prometheus.Desc) {}

func (b *blockingCollector) Collect(chan<- prometheus.Metric) {
	b.entered <- struct{}{}
	<-b.release
}

func TestScrapesBeyondTheCapGet503AndAreCounted(t *testing.T) {
	t.Parallel()
	m := newMetrics(t, Config{MaxScrapes: 1})
	// entered has room for the later scrape, which collects without anyone waiting on it.
	block := &blockingCollector{entered: make(chan struct{}, 4), release: make(chan struct{})}
	if err := m.Registry().Register(block); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(srv.URL)
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	select {
	case <-block.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the first scrape never started")
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a scrape beyond the cap got %d, want 503", resp.StatusCode)
	}
	close(block.release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the first scrape got %d, want 200", code)
	}
	fams := metricstest.Scrape(t, srv.URL)
	if got := fams.Sum("promhttp_metric_handler_requests_total", map[string]string{"code": "503"}); got != 1 {
		t.Errorf(`promhttp_metric_handler_requests_total{code="503"} = %v, want 1`, got)
	}
}
