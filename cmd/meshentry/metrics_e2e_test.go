package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// TestMetricsAfterKnownTraffic drives `meshentry run` with known traffic (HTTP 200s, 502
// refusals, one CONNECT tunnel of a known size) and checks the scraped /stats/prometheus
// exactly. It skips itself until the admin API serves the metrics and the proxy emits records,
// so it turns on once those branches are merged.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	t.Parallel()
	const (
		oks, refusals = 5, 3
		tunnelBytes   = 100_000
	)
	api := backend.HTTP(t, "api", "127.0.0.1:0")
	echo := echoListener(t)
	cfg := writeMeteredConfig(t, api.Port(), echo.Addr().(*net.TCPAddr).Port)

	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "shop"}, limits: defaultLimits(),
		listen: "127.0.0.1:0", adminAddr: "127.0.0.1:0", policy: "REGISTRY_ONLY", logLevel: "warn"}
	f.metrics = metricsRunFlags(t, "--workload", "checkout").metrics
	bound := startMeteredRun(t, f)
	proxyURL := &url.URL{Scheme: "http", Host: bound["forward proxy"].String()}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()

	var okBody int
	for range oks {
		okBody = getStatus(t, client, "http://api.example.com/x", http.StatusOK)
	}
	for range refusals {
		getStatus(t, client, "http://undeclared.example.com/", http.StatusBadGateway)
	}
	tunnelThrough(t, bound["forward proxy"].String(), "db.example.com:5432", tunnelBytes)

	scrapeURL := "http://" + bound["admin"].String() + "/stats/prometheus"
	db := map[string]string{"destination_service": "db.example.com", "request_protocol": "tcp", "source_workload": "checkout"}
	fams := scrapeUntil(t, scrapeURL, func(f metricstest.Families) bool { return f.Sum("istio_tcp_connections_closed_total", db) >= 1 })
	ok := map[string]string{"destination_service": "api.example.com", "destination_service_namespace": "shop",
		"response_code": "200", "response_flags": "-", "reporter": "source", "source_workload": "checkout"}
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{name: "every 200 is counted", metric: "istio_requests_total", labels: ok, want: oks},
		{name: "every 200 has a duration", metric: "istio_request_duration_milliseconds", labels: ok, want: oks},
		{name: "every refusal is a 502 with NR", metric: "istio_requests_total", labels: map[string]string{"response_code": "502", "response_flags": "NR"}, want: refusals},
		{name: "every refusal is counted by reason", metric: "meshentry_requests_refused_total", labels: map[string]string{"reason": "no_route"}, want: refusals},
		{name: "the tunnel is counted opened", metric: "istio_tcp_connections_opened_total", labels: db, want: 1},
		{name: "the tunnel is counted closed", metric: "istio_tcp_connections_closed_total", labels: db, want: 1},
		{name: "the tunnel's bytes from the client are exact", metric: "istio_tcp_received_bytes_total", labels: db, want: tunnelBytes},
		{name: "the tunnel's bytes to the client are exact", metric: "istio_tcp_sent_bytes_total", labels: db, want: tunnelBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fams.Sum(tt.metric, tt.labels); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
	t.Run("the response bytes of the 200s sum to what the client read", func(t *testing.T) {
		h := fams.Match("istio_response_bytes", ok)
		if len(h) != 1 || h[0].GetHistogram().GetSampleSum() != float64(oks*okBody) {
			t.Errorf("istio_response_bytes%v: %v, want one series summing %d", ok, h, oks*okBody)
		}
	})
}

// writeMeteredConfig writes the ServiceEntries of TestMetricsAfterKnownTraffic: an HTTP API and a
// TCP database, both in namespace shop, and returns the file's path.
func writeMeteredConfig(t *testing.T, apiPort, dbPort int) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %d}}]
`, apiPort, dbPort)), 0o644)

	return cfg
}

// scrapeUntil scrapes url until done holds of what it served, or for 5 s at most (the CI machine
// is slow under -race), and returns the last scrape.
func scrapeUntil(t *testing.T, url string, done func(metricstest.Families) bool) metricstest.Families {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams := metricstest.Scrape(t, url)
		if done(fams) || time.Now().After(deadline) {
			return fams
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startMeteredRun serves `meshentry run` with f until the test ends and returns its bound addresses.
func startMeteredRun(t *testing.T, f *runFlags) map[string]net.Addr {
	t.Helper()
	// stdout takes the access log's lines from its writer goroutine while run announces on it.
	var stdout, stderr syncBuffer
	cmd := newRunCommand()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	bound, err := launchRun(t, cmd, f, &stderr)
	if err != nil {
		t.Fatalf("run returned early: %v\n%s", err, stderr.String())
	}
	return bound
}

// getStatus GETs u, checks the status and returns the body's length.
func getStatus(t *testing.T, c *http.Client, u string, want int) int {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", u, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s = %d %q, want %d", u, resp.StatusCode, b, want)
	}
	return len(b)
}

// tunnelThrough opens a CONNECT tunnel to authority, sends n random bytes, reads the echo of all
// of them and closes the tunnel.
func tunnelThrough(t *testing.T, proxyAddr, authority string, n int) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s: %v %v", authority, resp, err)
	}
	sent := make([]byte, n)
	rand.Read(sent)
	go c.Write(sent)
	got := make([]byte, n)
	if _, err := io.ReadFull(br, got); err != nil || !bytes.Equal(got, sent) {
		t.Fatalf("echo through the tunnel: %v (equal: %v)", err, bytes.Equal(got, sent))
	}
}
