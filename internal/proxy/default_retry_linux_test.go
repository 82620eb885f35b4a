package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// TestADeclaredServiceWithoutAVirtualServiceRetriesA503: Istio gives the route of every
// declared service its default retry policy, a VirtualService or not. A 503 is sent twice
// more (to the one endpoint again, none other being left), by the Go engine and on the event
// loop alike, and the upstream's last answer is relayed flagged URX; a POST (its body held for
// the retries) too; a 200 is sent once.
func TestADeclaredServiceWithoutAVirtualServiceRetriesA503(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		loop   bool
		method string
		status int
		hits   int64
	}{
		{"a GET on the Go engine", false, "GET", 503, 3},
		{"a GET on the event loop", true, "GET", 503, 3},
		{"a POST", false, "POST", 503, 3},
		{"a 200 once", true, "GET", 200, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newDRBackend(t, "failing", nil)
			b.status.Store(int64(tc.status))
			sink := &clusterSink{}
			cfg := Config{Telemetry: sink}
			var h *harness
			if tc.loop {
				h, _ = startLoopProxy(t, drDocs("plain.test", "", b), cfg)
			} else {
				h = startProxy(t, drDocs("plain.test", "", b), cfg, "")
			}
			req, err := http.NewRequest(tc.method, "http://plain.test/", strings.NewReader("hello"))
			if tc.method == "GET" {
				req, err = http.NewRequest(tc.method, "http://plain.test/", nil)
			}
			if err != nil {
				t.Fatal(err)
			}
			resp, err := drClient(t, h).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || string(body) != "failing\n" || resp.Header.Get("X-Meshentry-Reason") != "" {
				t.Errorf("got %d %q (reason %q), want the upstream's own %d", resp.StatusCode, body, resp.Header.Get("X-Meshentry-Reason"), tc.status)
			}
			if got := b.hits.Load(); got != tc.hits {
				t.Errorf("the endpoint got %d requests, want %d", got, tc.hits)
			}
			sink.await(t, 1)
			if urx := sink.lastFlags()&telemetry.RetriesExhausted != 0; urx != (tc.status == 503) {
				t.Errorf("flags %v: URX %v, want %v", sink.lastFlags(), urx, tc.status == 503)
			}
			if tc.loop && h.p.ForwardLoopHTTPStats().Requests == 0 {
				t.Error("the event loop served no request")
			}
		})
	}
}
