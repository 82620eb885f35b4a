package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Finding (attack): a request that reaches the forward listener as h2c prior knowledge is forwarded
// without the proxy's Via and is not checked against it. The HTTP/1 path names the proxy in Via and
// answers 508 to a request that already names it, which is how a loop through an address the guard
// does not know (another proxy, an address added later) is caught; on the h2c path nothing is, and
// an h2c request to an h2c (HTTP2/GRPC) port keeps looping without ever gaining a Via. Repro:
// `curl --http2-prior-knowledge -H 'Host: x.bar.com' http://127.0.0.1:15001/` with example 05: the
// upstream's head has no Via, while the same request over HTTP/1.1 carries `Via: 1.1 meshentry-…`.
func TestAttackH2CRequestsCarryAndHonourTheProxysVia(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "via=%s", strings.Join(r.Header.Values("Via"), ","))
		}),
		ReadHeaderTimeout: 5 * time.Second,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [h1.example.com, h2.example.com]
  ports: [{number: 80, name: web, protocol: HTTP}, {number: 81, name: grpc, protocol: GRPC}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {web: `+port+`, grpc: `+port+`}}]
`, Config{}, "")
	// What the proxy writes in Via, learned from an HTTP/1.1 request through it.
	_, body, _ := get(t, h.client(nil), "http://h1.example.com/")
	ours := strings.TrimPrefix(body, "via=")
	if !strings.Contains(ours, "meshentry") {
		t.Fatalf("HTTP/1.1 request reached the upstream with %q, want the proxy's Via", body)
	}
	tr := &http.Transport{
		Protocols: new(http.Protocols),
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", h.addr)
		},
	}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	tests := []struct {
		name       string
		url        string
		via        string
		wantStatus int
		wantVia    bool
	}{
		{name: "an h2c request to an HTTP port reaches it with the proxy's Via", url: "http://h1.example.com/", wantStatus: 200, wantVia: true},
		{name: "an h2c request to a GRPC port reaches it with the proxy's Via", url: "http://h2.example.com:81/", wantStatus: 200, wantVia: true},
		{name: "an h2c request that already names the proxy in Via is a loop", url: "http://h2.example.com:81/", via: ours, wantStatus: 508},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tc.url, nil)
			if tc.via != "" {
				req.Header.Set("Via", tc.via)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, b, tc.wantStatus)
			}
			if tc.wantVia && !strings.Contains(string(b), ours) {
				t.Fatalf("upstream saw %q, want the proxy's Via %q", b, ours)
			}
		})
	}
}
