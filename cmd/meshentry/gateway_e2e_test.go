package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// writeYAML writes yaml to a fresh file and returns its path.
func writeYAML(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// viaProxy is a client whose every request goes through the forward proxy at addr.
func viaProxy(t *testing.T, addr net.Addr) *http.Client {
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr.String()})}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// fetch GETs u and returns the status and body.
func fetch(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// viaEcho serves ln with answers naming the Host and the Via chain the request arrived with,
// so a test sees which proxies it passed; it stops when the test ends.
func viaEcho(t *testing.T, ln net.Listener) int {
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s via %s", r.Host, r.URL.Path, r.Header.Get("Via"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// hops counts the proxies in a Via chain and whether the egress gateway is among them.
func hops(via string) (n int, gateway bool) {
	for _, h := range strings.Split(via, ",") {
		n++
		gateway = gateway || strings.Contains(h, "meshentry-gateway-")
	}
	return n, gateway
}

// example04 is the reference example 04 as written; for the gateway (backendPort > 0)
// httpbin.com's port 80 is the test backend's port (an endpoint naming the host, so resolution
// stays DNS). Its VirtualService names the gateway "istio-egressgateway" from namespace egress:
// Istio would look for egress/istio-egressgateway and bind nothing, while meshentry binds the
// served Gateway of that name (internal/route/doc.go) and validate warns.
func example04(t *testing.T, backendPort int) string {
	t.Helper()
	b, err := os.ReadFile("../../testdata/validate/examples/04-egress-gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	if backendPort == 0 {
		return y
	}
	const dns = "  resolution: DNS\n"
	if strings.Count(y, dns) != 1 {
		t.Fatalf("example 04 no longer has one %q", dns)
	}
	return strings.Replace(y, dns, fmt.Sprintf("%s  endpoints: [{address: httpbin.com, ports: {http: %d}}]\n", dns, backendPort), 1)
}

// gatewayService is the egress gateway's Kubernetes Service as a ServiceEntry, so a sidecar
// can reach istio-egressgateway.istio-system.svc.cluster.local: its ports go to the gateway's
// bound ports on loopback (server port → bound address). Every port is declared HTTP: the
// sidecar's VirtualService routing (proxy/vsroute.go) finds a route's destination among HTTP
// ports only, where Istio would take the cluster of port 443 whatever its protocol.
func gatewayService(ports map[int]net.Addr) string {
	var ps, eps []string
	for number, addr := range ports {
		name := fmt.Sprintf("p%d", number)
		ps = append(ps, fmt.Sprintf("{number: %d, name: %s, protocol: HTTP}", number, name))
		eps = append(eps, fmt.Sprintf("%s: %d", name, addr.(*net.TCPAddr).Port))
	}
	return fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [%s]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {%s}}]
`, strings.Join(ps, ", "), strings.Join(eps, ", "))
}

// TestEgressGatewayExample04 is Istio's egress gateway task as example 04 declares it: an
// application in namespace egress → its sidecar → the egress gateway → the httpbin backend,
// each meshentry run in this process with the CLI's flags.
func TestEgressGatewayExample04(t *testing.T) {
	t.Parallel()
	egressExample04(t, startRunArgs)
}

// egressExample04 runs example 04 with start running each meshentry: in this process, or as
// processes of their own (gateway_process_linux_test.go).
func egressExample04(t *testing.T, start func(t *testing.T, args ...string) map[string]net.Addr) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpbin := viaEcho(t, ln)
	dns := dnstest.Start(t)
	dns.Set("httpbin.com", 30, "127.0.0.1")
	gw := start(t, "-f", writeYAML(t, example04(t, httpbin)), "-n", "egress", "--gateway", "--labels", "istio=egressgateway",
		"--gateway-bind", "127.0.0.1", "--gateway-port", "80=0", "--dns-server", dns.Addr, "--listen", "", "--admin", "127.0.0.1:0")
	gwAddr := gw["gateway port 80"]
	// The sidecars read the example as it is (httpbin.com on port 80, where nothing listens):
	// only its mesh rule, which sends httpbin.com to the gateway, gets the request through.
	sidecarConfig := writeYAML(t, example04(t, 0)+gatewayService(map[int]net.Addr{80: gwAddr}))
	sidecar := func(ns string) *http.Client {
		out := start(t, "-f", sidecarConfig, "-n", ns, "--listen", "127.0.0.1:0", "--admin", "", "--dns-server", dns.Addr)
		return viaProxy(t, out["forward proxy"])
	}

	t.Run("the application's request reaches httpbin through the gateway", func(t *testing.T) {
		status, body := fetch(t, sidecar("egress"), "http://httpbin.com/headers")
		t.Logf("%d %s", status, body)
		via, _ := strings.CutPrefix(body, "httpbin.com /headers via ")
		if n, gateway := hops(via); status != 200 || n != 2 || !gateway {
			t.Errorf("got %d %q, want 200 from httpbin.com through the sidecar and the gateway", status, body)
		}
	})
	t.Run("a sidecar in another namespace is refused: the entry is exported to egress only", func(t *testing.T) {
		status, body := fetch(t, sidecar("shop"), "http://httpbin.com/headers")
		if status != 502 || !strings.Contains(body, "REGISTRY_ONLY") {
			t.Errorf("got %d %q", status, body)
		}
	})
	t.Run("the gateway answers 404 for a host its server takes but no VirtualService routes", func(t *testing.T) {
		direct := &http.Client{Timeout: 10 * time.Second}
		status, body := fetch(t, direct, "http://"+gwAddr.String()+"/")
		if status != 404 || !strings.Contains(body, "no VirtualService") {
			t.Errorf("got %d %q", status, body)
		}
	})
	t.Run("the metrics count the request the gateway had no route for", func(t *testing.T) {
		if gw["admin"] == nil {
			t.Skip("start reports only the first listener, the gateway's")
		}
		_, metrics := fetch(t, &http.Client{Timeout: 10 * time.Second}, "http://"+gw["admin"].String()+"/stats/prometheus")
		if want := `meshentry_gateway_connections_refused_total{reason="no_route"} 1` + "\n"; !strings.Contains(metrics, want) {
			t.Errorf("the metrics do not say %q:\n%s", want, grepLines(metrics, "meshentry_gateway"))
		}
	})
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestEgressGatewayWithTLSOrigination is Istio's "Egress Gateways with TLS Origination" task
// with its own resources: the sidecar sends plain HTTP for edition.cnn.com to the gateway over
// ISTIO_MUTUAL on 443, and the gateway originates TLS to the external HTTPS server, trusted
// through the DestinationRule's caCertificates (the task's server is public; ours is the test's).
func TestEgressGatewayWithTLSOrigination(t *testing.T) {
	t.Parallel()
	egressTLSOrigination(t, startRunArgs)
}

// egressTLSOrigination runs the TLS origination task with start running each meshentry.
func egressTLSOrigination(t *testing.T, start func(t *testing.T, args ...string) map[string]net.Addr) {
	mesh := pki.NewCA(t, "cluster.local")
	external := pki.NewCA(t, "external.example")
	srvDir := pki.Issue(t, external, "", "cnn", "web", ca.IssueOptions{DNSNames: []string{"edition.cnn.com"}})
	cert, err := tls.LoadX509KeyPair(filepath.Join(srvDir, ca.CertChainFile), filepath.Join(srvDir, ca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cnn := backend.Serve(t, "cnn", tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}}))
	dns := dnstest.Start(t)
	dns.Set("edition.cnn.com", 30, "127.0.0.1")
	gwConfig := tlsOriginationConfig(cnn.Port(), filepath.Join(srvDir, ca.RootCertFile))
	gw := start(t, "-f", writeYAML(t, gwConfig), "-n", "default", "--gateway", "--labels", "istio=egressgateway",
		"--gateway-bind", "127.0.0.1", "--gateway-port", "443=0", "--dns-server", dns.Addr, "--listen", "", "--admin", "",
		"--identity-dir", pki.Issue(t, mesh, "", "istio-system", "istio-egressgateway-service-account", ca.IssueOptions{}))
	// The sidecar reads the same config, and the gateway's Service: its mesh rule sends
	// edition.cnn.com to subset cnn of the gateway, mutual TLS with SNI edition.cnn.com.
	sidecarConfig := writeYAML(t, gwConfig+gatewayService(map[int]net.Addr{443: gw["gateway port 443"]}))
	out := start(t, "-f", sidecarConfig, "-n", "default", "--listen", "127.0.0.1:0", "--admin", "", "--dns-server", dns.Addr,
		"--identity-dir", pki.Issue(t, mesh, "", "default", "sleep", ca.IssueOptions{}))

	t.Run("plain HTTP from the application leaves the gateway as HTTPS to the external server", func(t *testing.T) {
		status, body := fetch(t, viaProxy(t, out["forward proxy"]), "http://edition.cnn.com/politics")
		if status != 200 || body != "cnn edition.cnn.com /politics" {
			t.Errorf("got %d %q", status, body)
		}
	})
	t.Run("a client without the mesh identity cannot use the gateway", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		if _, err := c.Get("https://" + gw["gateway port 443"].String() + "/"); err == nil {
			t.Error("the gateway served a client that presented no certificate")
		}
	})
}

// tlsOriginationConfig is the resources of Istio's TLS origination task, the external server
// at port on loopback and trusted through caFile.
func tlsOriginationConfig(port int, caFile string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: cnn, namespace: default}
spec:
  hosts: [edition.cnn.com]
  ports:
  - {number: 80, name: http-port, protocol: HTTP}
  - {number: 443, name: https, protocol: HTTPS}
  resolution: DNS
  endpoints: [{address: edition.cnn.com, ports: {https: %[1]d}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https-port-for-tls-origination, protocol: HTTPS}
    hosts: [edition.cnn.com]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-cnn-through-egress-gateway, namespace: default}
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: cnn, port: {number: 443}}}]
  - match: [{gateways: [istio-egressgateway], port: 443}]
    route: [{destination: {host: edition.cnn.com, port: {number: 443}}, weight: 100}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-cnn, namespace: default}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: ISTIO_MUTUAL, sni: edition.cnn.com}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls-for-edition-cnn-com, namespace: default}
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, caCertificates: %[2]s}
`, port, caFile)
}
