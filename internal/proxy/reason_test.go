package proxy

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// TestResolverErrorsNameTheHostOnce checks that a name that does not resolve is logged with the
// resolver's reason, naming the host once, while the client is told only which cluster failed.
func TestResolverErrorsNameTheHostOnce(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t) // knows no names: every lookup is NXDOMAIN
	var logs lockedBuffer
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: gone}
spec:
  hosts: [gone.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.wild.example.com"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
`, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, dns.Addr)
	connectReason := func(t *testing.T, authority string) string {
		c := dial(t, h.addr)
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Meshentry-Reason")
	}
	tests := []struct {
		name   string
		host   string
		reason func(t *testing.T) string
	}{
		{name: "says it once for an HTTP request to a DNS endpoint", host: "gone.example.com", reason: func(t *testing.T) string {
			_, _, resp := get(t, h.client(nil), "http://gone.example.com/")
			return resp.Header.Get("X-Meshentry-Reason")
		}},
		{name: "says it once for a CONNECT to a DNS endpoint", host: "gone.example.com", reason: func(t *testing.T) string {
			return connectReason(t, "gone.example.com:443")
		}},
		{name: "says it once for a CONNECT to a NONE host", host: "api.wild.example.com", reason: func(t *testing.T) string {
			return connectReason(t, "api.wild.example.com:443")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reason := tc.reason(t)
			if reason == "" || strings.Contains(reason, "no such host") {
				t.Fatalf("reason %q: want what failed, with the resolver's text kept for the log", reason)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "resolve "+tc.host) {
					line = l
				}
			}
			if !strings.Contains(line, "no such host") {
				t.Fatalf("no log line says %s does not resolve; log:\n%s", tc.host, logs.String())
			}
			if n := strings.Count(line, "resolve "+tc.host); n != 1 {
				t.Fatalf("log line %q says %q %d times, want once", line, "resolve "+tc.host, n)
			}
		})
	}
}
