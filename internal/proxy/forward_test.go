package proxy

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// Reference example 01, adapted to loopback: the three API hosts resolve (through a real DNS server)
// to one TLS backend that holds a certificate per name; the service port keeps 443 and targetPort
// points at the backend's port.
func TestExample01RoutesTLSBySNIThroughCONNECT(t *testing.T) {
	t.Parallel()
	hosts := []string{"api.dropboxapi.com", "www.googleapis.com", "api.facebook.com"}
	ca := backend.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := backend.TLS(t, "tls-backend", ln, ca, hosts...)
	dns := dnstest.Start(t)
	for _, h := range hosts {
		dns.Set(h, 30, "127.0.0.1")
	}
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-https
spec:
  hosts: [api.dropboxapi.com, www.googleapis.com, api.facebook.com]
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: https
    protocol: TLS
    targetPort: %d
  resolution: DNS
`, be.Port()), Config{}, dns.Addr)

	for _, host := range hosts {
		t.Run("passes TLS for "+host+" through to the backend without terminating it", func(t *testing.T) {
			tunnel, status := h.connect(t, host+":443")
			if status != 200 {
				t.Fatalf("CONNECT status %d", status)
			}
			body := httpsOver(t, tunnel, ca, host)
			if want := "tls-backend " + host + " /via-tunnel"; body != want {
				t.Fatalf("body %q, want %q", body, want)
			}
		})
	}
	t.Run("refuses CONNECT to a host no ServiceEntry declares", func(t *testing.T) {
		if _, status := h.connect(t, "api.example.org:443"); status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", status)
		}
	})
}

// Reference example 03, adapted: resolution NONE sends the tunnel to the host the application asked
// for, resolved by the ambient DNS (here the test's server), on the port it asked for.
func TestExample03SendsWildcardTLSToTheRequestedHost(t *testing.T) {
	t.Parallel()
	ca := backend.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := backend.TLS(t, "wikipedia", ln, ca, "wikipedia.org", "en.wikipedia.org", "de.wikipedia.org")
	dns := dnstest.Start(t)
	for _, n := range []string{"wikipedia.org", "en.wikipedia.org", "de.wikipedia.org", "www.example.org"} {
		dns.Set(n, 30, "127.0.0.1")
	}
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-redirect
spec:
  hosts: [wikipedia.org, "*.wikipedia.org"]
  location: MESH_EXTERNAL
  ports:
  - number: %d
    name: https
    protocol: TLS
  resolution: NONE
`, be.Port()), Config{}, dns.Addr)
	for _, host := range []string{"wikipedia.org", "en.wikipedia.org", "de.wikipedia.org"} {
		t.Run("tunnels "+host, func(t *testing.T) {
			tunnel, status := h.connect(t, fmt.Sprintf("%s:%d", host, be.Port()))
			if status != 200 {
				t.Fatalf("CONNECT status %d", status)
			}
			if body := httpsOver(t, tunnel, ca, host); body != "wikipedia "+host+" /via-tunnel" {
				t.Fatalf("body %q", body)
			}
		})
	}
	t.Run("refuses a host outside the wildcard", func(t *testing.T) {
		if _, status := h.connect(t, fmt.Sprintf("www.example.org:%d", be.Port())); status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", status)
		}
	})
}

// Reference example 05, adapted: wildcard HTTP hosts with resolution NONE go to the address the
// requested name resolves to.
func TestExample05RoutesWildcardHTTPToTheResolvedAddress(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "bar", "127.0.0.1:0")
	dns := dnstest.Start(t)
	dns.Set("www.bar.com", 30, "127.0.0.1")
	dns.Set("bar.com", 30, "127.0.0.1")
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-wildcard-example
spec:
  hosts: ["*.bar.com"]
  location: MESH_EXTERNAL
  ports:
  - number: %d
    name: http
    protocol: HTTP
  resolution: NONE
`, be.Port()), Config{}, dns.Addr)
	c := h.client(nil)
	t.Run("forwards a subdomain of the wildcard", func(t *testing.T) {
		status, body, _ := get(t, c, fmt.Sprintf("http://www.bar.com:%d/x?y=1", be.Port()))
		if status != 200 || body != fmt.Sprintf("bar www.bar.com:%d /x?y=1", be.Port()) {
			t.Fatalf("got %d %q", status, body)
		}
	})
	t.Run("refuses the wildcard's apex, which it does not cover", func(t *testing.T) {
		status, body, resp := get(t, c, fmt.Sprintf("http://bar.com:%d/", be.Port()))
		if status != http.StatusBadGateway || !strings.Contains(resp.Header.Get("X-Meshentry-Reason"), `"bar.com"`) || !strings.Contains(body, "no ServiceEntry") {
			t.Fatalf("got %d %q reason %q", status, body, resp.Header.Get("X-Meshentry-Reason"))
		}
	})
}

// Reference example 06: a STATIC unix:// endpoint.
func TestExample06ForwardsToAUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "socket")
	backend.Unix(t, "unix", sock)
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: unix-domain-socket-example
spec:
  hosts: ["example.unix.local"]
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: unix://%s
`, sock), Config{}, "")
	c := h.client(nil)
	for i := 0; i < 3; i++ {
		status, body, _ := get(t, c, "http://example.unix.local/hello")
		if status != 200 || body != "unix example.unix.local /hello" {
			t.Fatalf("request %d: got %d %q", i, status, body)
		}
	}
}

// Reference example 07 with its port names corrected: foo.bar.com is backed by three DNS-named
// endpoints, each remapping port 80 to its own port.
func TestExample07BalancesOverDNSNamedEndpoints(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	var ports []int
	for _, name := range []string{"us", "uk", "in"} {
		be := backend.HTTP(t, name, "127.0.0.1:0")
		ports = append(ports, be.Port())
		dns.Set(name+".foo.bar.com", 30, "127.0.0.1")
	}
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: external-svc-dns
spec:
  hosts: [foo.bar.com]
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
  endpoints:
  - address: us.foo.bar.com
    ports: {http: %d}
  - address: uk.foo.bar.com
    ports: {http: %d}
  - address: in.foo.bar.com
    ports: {http: %d}
`, ports[0], ports[1], ports[2]), Config{}, dns.Addr)
	c := h.client(nil)
	seen := map[string]int{}
	for i := 0; i < 90; i++ {
		status, body, _ := get(t, c, "http://foo.bar.com/baz")
		if status != 200 || !strings.HasSuffix(body, " foo.bar.com /baz") {
			t.Fatalf("got %d %q", status, body)
		}
		seen[strings.Fields(body)[0]]++
	}
	for _, name := range []string{"us", "uk", "in"} {
		if seen[name] < 10 {
			t.Fatalf("endpoint %s served %d of 90 requests: %v", name, seen[name], seen)
		}
	}
}

// A DNS endpoint follows its name's answer when the TTL runs out.
func TestDNSAnswerChangesAreFollowedAfterTheTTL(t *testing.T) {
	t.Parallel()
	first := backend.HTTP(t, "first", "127.0.0.2:0")
	second := backend.HTTP(t, "second", fmt.Sprintf("127.0.0.3:%d", first.Port()))
	dns := dnstest.Start(t)
	dns.Set("dyn.example.com", 1, "127.0.0.2")
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dyn}
spec:
  hosts: [dyn.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}]
  resolution: DNS
`, second.Port()), Config{}, dns.Addr)
	c := h.client(nil)
	if _, body, _ := get(t, c, "http://dyn.example.com/"); !strings.HasPrefix(body, "first ") {
		t.Fatalf("before the change: %q", body)
	}
	dns.Set("dyn.example.com", 1, "127.0.0.3")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body, _ := get(t, c, "http://dyn.example.com/")
		if strings.HasPrefix(body, "second ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %q 5 s after a 1 s TTL ran out", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWeightsAreRespectedInProportion(t *testing.T) {
	t.Parallel()
	weights := map[string]int{"light": 1, "middle": 2, "heavy": 5}
	var eps []string
	for _, name := range []string{"light", "middle", "heavy"} {
		be := backend.HTTP(t, name, "127.0.0.1:0")
		eps = append(eps, fmt.Sprintf("  - {address: 127.0.0.1, ports: {http: %d}, weight: %d}", be.Port(), weights[name]))
	}
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: weighted}
spec:
  hosts: [weighted.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
`+strings.Join(eps, "\n")+"\n", Config{}, "")
	c := h.client(nil)
	const n = 2000
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		status, body, _ := get(t, c, "http://weighted.example.com/")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		seen[strings.Fields(body)[0]]++
	}
	for name, w := range weights {
		got, want := float64(seen[name])/n, float64(w)/8
		if math.Abs(got-want) > 0.05 {
			t.Errorf("%s (weight %d) got %.1f%% of %d requests, want %.1f%% ± 5", name, w, 100*got, n, 100*want)
		}
	}
	t.Logf("shares over %d requests: %v", n, seen)
}

func TestLocalityFailover(t *testing.T) {
	t.Parallel()
	type ep struct{ name, locality string }
	eps := []ep{
		{name: "local-a", locality: "r1/z1/s1"},
		{name: "local-b", locality: "r1/z1/s1"},
		{name: "same-zone", locality: "r1/z1/s2"},
		{name: "same-region", locality: "r1/z2/s1"},
		{name: "far", locality: "r2/z1/s1"},
	}
	servers := map[string]*backend.Server{}
	var lines []string
	for _, e := range eps {
		be := backend.HTTP(t, e.name, "127.0.0.1:0")
		servers[e.name] = be
		lines = append(lines, fmt.Sprintf("  - {address: 127.0.0.1, ports: {http: %d}, locality: %s}", be.Port(), e.locality))
	}
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: spread}
spec:
  hosts: [spread.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
`+strings.Join(lines, "\n")+"\n", Config{Locality: "r1/z1/s1"}, "")
	c := h.client(nil)
	served := func(n int) map[string]int {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			status, body, _ := get(t, c, "http://spread.example.com/")
			if status != 200 {
				t.Fatalf("request %d failed with %d: %s", i, status, body)
			}
			seen[strings.Fields(body)[0]]++
		}
		return seen
	}
	onlyFrom := func(seen map[string]int, allowed ...string) {
		t.Helper()
		for name := range seen {
			if !strings.Contains(strings.Join(allowed, " "), name) {
				t.Fatalf("served by %s, want only %v: %v", name, allowed, seen)
			}
		}
	}
	t.Run("keeps traffic in the proxy's own subzone", func(t *testing.T) {
		seen := served(40)
		onlyFrom(seen, "local-a", "local-b")
		if seen["local-a"] == 0 || seen["local-b"] == 0 {
			t.Fatalf("both local endpoints should serve: %v", seen)
		}
	})
	servers["local-a"].Stop()
	servers["local-b"].Stop()
	c.CloseIdleConnections()
	h.p.pool.CloseIdle()
	t.Run("fails over to the same zone when the subzone's endpoints stop, failing no request", func(t *testing.T) {
		onlyFrom(served(40), "same-zone")
	})
	t.Run("ejects the stopped endpoints after five connect failures in a row", func(t *testing.T) {
		for _, name := range []string{"local-a", "local-b"} {
			if key := servers[name].Addr; !h.p.health.Ejected(key) {
				t.Errorf("%s (%s) is not ejected", name, key)
			}
		}
		if h.p.health.Ejected(servers["same-zone"].Addr) {
			t.Error("the endpoint serving traffic was ejected")
		}
	})
	servers["same-zone"].Stop()
	h.p.pool.CloseIdle()
	t.Run("then to the same region", func(t *testing.T) {
		onlyFrom(served(20), "same-region")
	})
}

func TestRefusalsAndPassthrough(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "known", "127.0.0.1:0")
	dns := dnstest.Start(t)
	dns.Set("elsewhere.example.org", 30, "127.0.0.1")
	seYAML := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: known}
spec:
  hosts: [known.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, be.Port())
	strict := startProxy(t, seYAML, Config{}, dns.Addr)
	open := startProxy(t, seYAML, Config{AllowAny: true}, dns.Addr)

	t.Run("answers 502 naming the host under REGISTRY_ONLY", func(t *testing.T) {
		status, body, resp := get(t, strict.client(nil), fmt.Sprintf("http://elsewhere.example.org:%d/", be.Port()))
		reason := resp.Header.Get("X-Meshentry-Reason")
		if status != 502 || !strings.Contains(reason, `"elsewhere.example.org"`) || !strings.Contains(body, "REGISTRY_ONLY") {
			t.Fatalf("got %d %q (reason %q)", status, body, reason)
		}
	})
	t.Run("refuses an origin-form request whose Host nobody declares", func(t *testing.T) {
		raw := rawRequest(t, strict.addr, "GET / HTTP/1.1\r\nHost: elsewhere.example.org\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 502") {
			t.Fatalf("got %q", raw)
		}
	})
	t.Run("routes an origin-form request by its Host header and adds x-request-id", func(t *testing.T) {
		raw := rawRequest(t, strict.addr, "GET /p HTTP/1.1\r\nHost: known.example.com\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(raw, "HTTP/1.1 200") || !strings.HasSuffix(raw, "known known.example.com /p") {
			t.Fatalf("got %q", raw)
		}
		if !strings.Contains(strings.ToLower(raw), "x-request-id: ") || strings.Contains(strings.ToLower(raw), "x-request-id: \r\n") {
			t.Fatalf("backend saw no x-request-id: %q", raw)
		}
	})
	t.Run("passes an undeclared host through under ALLOW_ANY", func(t *testing.T) {
		status, body, _ := get(t, open.client(nil), fmt.Sprintf("http://elsewhere.example.org:%d/open", be.Port()))
		if status != 200 || !strings.HasSuffix(body, "/open") {
			t.Fatalf("got %d %q", status, body)
		}
	})
}

func TestExportToHidesAServiceFromOtherNamespaces(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "private", "127.0.0.1:0")
	seYAML := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: private, namespace: team}
spec:
  hosts: [private.example.com]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, be.Port())
	tests := []struct {
		name       string
		namespace  string
		wantStatus int
	}{
		{name: "serves the entry's own namespace", namespace: "team", wantStatus: 200},
		{name: "refuses another namespace", namespace: "default", wantStatus: 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startProxy(t, seYAML, Config{Namespace: tc.namespace}, "")
			if status, body, _ := get(t, h.client(nil), "http://private.example.com/"); status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", status, tc.wantStatus, body)
			}
		})
	}
}

// rawRequest writes a request by hand (origin-form, as a sidecar's port listener receives it) and
// returns the whole response.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}
