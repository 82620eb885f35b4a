package gateway

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// routedConfig is a plaintext gateway whose VirtualService answers /teapot itself and sends
// the rest to backend port.
func routedConfig(port int, hosts string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: egress}
spec:
  hosts: [api.example.com, other.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [%s]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: egress}
spec:
  hosts: [api.example.com, other.example.com]
  gateways: [istio-system/egressgateway]
  http:
  - match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - route: [{destination: {host: api.example.com}}]
`, port, hosts)
}

// TestGatewayCarriesOutRouteActionsAndFollowsReloads checks that a gateway's VirtualService
// rules act as at a sidecar, and that a reload changes the hosts a server accepts.
func TestGatewayCarriesOutRouteActionsAndFollowsReloads(t *testing.T) {
	t.Parallel()
	api := backend.HTTP(t, "api", "127.0.0.1:0")
	h := startGateway(t, routedConfig(api.Port(), "egress/api.example.com"), "", nil)
	c := h.client(80, nil)
	steps := []struct {
		name       string
		url        string
		wantStatus int
		wantBody   string
	}{
		{name: "a directResponse rule is answered by the gateway", url: "http://api.example.com/teapot", wantStatus: 418, wantBody: "short and stout"},
		{name: "the next rule routes to the destination", url: "http://api.example.com/x", wantStatus: 200, wantBody: "api api.example.com /x"},
		{name: "a host the server does not declare yet is 404", url: "http://other.example.com/x", wantStatus: 404, wantBody: "not among the hosts"},
	}
	for _, s := range steps {
		status, body, err := get(c, s.url)
		if err != nil || status != s.wantStatus || !strings.Contains(body, s.wantBody) {
			t.Errorf("%s: got %d %q, %v", s.name, status, body, err)
		}
	}
	t.Run("a reload that adds the host to the server's hosts lets it through", func(t *testing.T) {
		snap := registry.Build(decode(t, routedConfig(api.Port(), "egress/api.example.com, egress/other.example.com")), 2)
		h.gw.cfg.Proxy.Update(snap)
		status, body, err := get(c, "http://other.example.com/y")
		if err != nil || status != 200 || body != "api other.example.com /y" {
			t.Errorf("got %d %q, %v", status, body, err)
		}
	})
}

// TestGatewayClosesConnectionsBeyondItsCap holds the cap's worth of connections open and sees
// the next one closed at once and counted.
func TestGatewayClosesConnectionsBeyondItsCap(t *testing.T) {
	t.Parallel()
	api := backend.HTTP(t, "api", "127.0.0.1:0")
	h := startGateway(t, routedConfig(api.Port(), `"*/*"`), "", func(c *Config) { c.MaxConnections = 2 })
	addr := h.addrs[80].String()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range 2 {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		held = append(held, c)
	}
	waitFor(t, "two connections open", func() bool { return h.gw.Open(80) == 2 })
	extra, err := net.Dial("tcp", addr)
	must(t, err)
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Fatalf("the connection beyond the cap read %d bytes, %v; want it closed", n, err)
	}
	if got := h.gw.Stats().Overflow.Load(); got != 1 {
		t.Errorf("overflow counted %d, want 1", got)
	}
	held[0].Close()
	waitFor(t, "a slot freed", func() bool { return h.gw.Open(80) < 2 })
	status, body, err := get(h.client(80, nil), "http://api.example.com/after")
	if err != nil || status != 200 || body != "api api.example.com /after" {
		t.Errorf("after a slot freed: got %d %q, %v", status, body, err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestGatewayRedirectsToHTTPS answers a plaintext server with httpsRedirect by 301 to https.
func TestGatewayRedirectsToHTTPS(t *testing.T) {
	t.Parallel()
	h := startGateway(t, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - {port: {number: 80, name: http, protocol: HTTP}, hosts: [secure.example.com], tls: {httpsRedirect: true}}
`, "", nil)
	c := h.client(80, nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get("http://secure.example.com/a?b=c")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://secure.example.com/a?b=c" {
		t.Errorf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
