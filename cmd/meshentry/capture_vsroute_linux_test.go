package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// TestCapturedVirtualServiceRoutes sends captured HTTP/1.1 and h2c requests to a service whose
// VirtualService picks a DestinationRule subset by header, rewrites the path of one and adds a
// response field: iptables redirects the application's connections to meshentry, which does
// what the matched rule says.
func TestCapturedVirtualServiceRoutes(t *testing.T) {
	if req := netns.Requirements(); req != "" {
		t.Skip(req)
	}
	ns := netns.New(t, "10.215.0.10/24")
	v1 := backend.Serve(t, "v1", ns.MustListen("127.0.0.1:0"))
	v2 := backend.Serve(t, "v2", ns.MustListen("127.0.0.1:0"))
	startCaptured(t, ns, "10.215.0.0/24", fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: %d}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: %d}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web.example.com
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web.example.com]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    rewrite: {uri: /canary/}
    route: [{destination: {host: web.example.com, subset: v2}}]
  - route: [{destination: {host: web.example.com, subset: v1}}]
    headers: {response: {set: {x-subset: v1}}}
`, v1.Port(), v2.Port()))

	tests := []struct {
		name       string
		canary     bool
		wantBody   string
		wantSubset string
	}{
		{name: "a request without the header goes to subset v1 with the response field", wantBody: "v1 web.example.com /app/x", wantSubset: "v1"},
		{name: "a canary request goes to subset v2 with its path rewritten", canary: true, wantBody: "v2 web.example.com /canary/app/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" over HTTP/1.1", func(t *testing.T) {
			c, err := ns.Dial("tcp", "10.215.0.10:80")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			extra := ""
			if tt.canary {
				extra = "X-Canary: yes\r\n"
			}
			// Two requests on one connection: each is routed by its own fields.
			br := bufio.NewReader(c)
			for range 2 {
				fmt.Fprintf(c, "GET /app/x HTTP/1.1\r\nHost: web.example.com\r\n%s\r\n", extra)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != tt.wantBody || resp.Header.Get("X-Subset") != tt.wantSubset {
					t.Fatalf("got %q (x-subset %q), want %q (%q)", b, resp.Header.Get("X-Subset"), tt.wantBody, tt.wantSubset)
				}
			}
		})
		t.Run(tt.name+" over h2c", func(t *testing.T) {
			tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(_ context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return ns.Dial(network, addr)
			}}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "http://10.215.0.10:80/app/x", nil)
			req.Host = "web.example.com"
			if tt.canary {
				req.Header.Set("X-Canary", "yes")
			}
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.TrimSpace(string(b)) != tt.wantBody || resp.Header.Get("X-Subset") != tt.wantSubset {
				t.Fatalf("got %d %q (x-subset %q), want %q (%q)", resp.StatusCode, b, resp.Header.Get("X-Subset"), tt.wantBody, tt.wantSubset)
			}
		})
	}
}
