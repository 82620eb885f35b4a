package httpfwd

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Finding (attack): on h2c prior knowledge, the field cap (MaxHeaders, Envoy's max_headers_count,
// 100) is not applied: a request with 150 fields is forwarded to an HTTP/1.1 upstream whole,
// where the same request over HTTP/1.1 gets 431 (Envoy caps HTTP/2 heads alike). And a request
// with two X-Request-Id fields reaches the upstream with both, where HTTP/1.1 forwards only the
// first, the one the proxy logs. Repro: `curl --http2-prior-knowledge -H X-1:a … -H X-150:a
// -H 'Host: web.test' http://PROXY/`.
func TestAttackH2CHeadsAreBoundedAndCarryOneRequestID(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 4)
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		seen <- r.Header.Clone()
	})
	router := &hostRouter{routes: map[string]Upstream{"web.test:8080": {Addr: be.addr()}}}
	proxy := startProxy(t, &Server{Router: router})
	client := h2cClient(t)
	many := http.Header{}
	for i := range 150 {
		many.Set(fmt.Sprintf("X-Field-%d", i), "a")
	}
	tests := []struct {
		name       string
		header     http.Header
		wantStatus int
		check      func(t *testing.T, h http.Header)
	}{
		{name: "a head of 150 fields is refused with 431", header: many, wantStatus: 431},
		{name: "two request ids reach the upstream as one", header: http.Header{"X-Request-Id": {"first", "second"}}, wantStatus: 200,
			check: func(t *testing.T, h http.Header) {
				if got := h.Values("X-Request-Id"); len(got) != 1 || got[0] != "first" {
					t.Fatalf("upstream got X-Request-Id %q, want only %q", got, "first")
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+proxy+"/", nil)
			req.Host = "web.test:8080"
			req.Header = tc.header
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				var n int
				select {
				case h := <-seen:
					n = len(h)
				default:
				}
				t.Fatalf("status %d (%q), want %d; the upstream saw %d fields", resp.StatusCode, strings.TrimSpace(string(body)), tc.wantStatus, n)
			}
			if tc.check != nil {
				tc.check(t, <-seen)
			}
		})
	}
}
