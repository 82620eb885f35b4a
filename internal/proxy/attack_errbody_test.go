package proxy

import (
	"regexp"
	"strings"
	"testing"
)

// Finding (attack): issue 6 asks that an error body be generic and carry the request id, so a
// user can hand it to the operator who finds the detail in the log. The engine's own errors do
// ("meshentry: invalid host; request id …"), but the proxy's upstream failures do not: a request
// to a declared entry whose endpoint refuses gets `503 … every endpoint of outbound|80||… failed
// to connect` with no id in the body, and a CONNECT that fails gets neither an id in the body nor
// an x-request-id field, and its log line ("not forwarded", via=CONNECT) has no id to match.
func TestAttackUpstreamFailureBodiesCarryTheRequestID(t *testing.T) {
	t.Parallel()
	// Port 1 is privileged and never bound by a test, so every connect is refused.
	const port = "1"
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: down}
spec:
  hosts: [down.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: `+port+`, tls: `+port+`}}]
`, Config{}, "")
	id := regexp.MustCompile(`request id [0-9a-f-]{36}`)
	tests := []struct {
		name string
		req  string
	}{
		{name: "a forwarded request whose endpoints all refuse names its request id in the body",
			req: "GET http://down.example.com/ HTTP/1.1\r\nHost: down.example.com\r\nConnection: close\r\n\r\n"},
		{name: "a CONNECT whose endpoints all refuse names its request id in the body",
			req: "CONNECT down.example.com:443 HTTP/1.1\r\nHost: down.example.com:443\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := rawRequest(t, h.addr, tc.req)
			_, body, _ := strings.Cut(raw, "\r\n\r\n")
			if !strings.HasPrefix(raw, "HTTP/1.1 503") || !id.MatchString(body) {
				t.Fatalf("got %q, want a 503 whose body names the request id", raw)
			}
		})
	}
}
