package main

import (
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
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// startRunArgs runs `meshentry run ARGS...` in-process, its flags parsed as the CLI parses them,
// and returns the bound addresses; the run stops when the test ends.
func startRunArgs(t *testing.T, args ...string) map[string]net.Addr {
	t.Helper()
	f := new(runFlags)
	cmd := newRunCommandFor(f)
	var out, errOut syncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	bound, err := launchRun(t, cmd, f, &errOut)
	if err != nil {
		t.Fatalf("run %v returned early: %v\n%s", args, err, errOut.String())
	}
	return bound
}

// meshInternal is example 08 on loopback: a MESH_INTERNAL service whose server must present
// the listed SPIFFE ID, with a DestinationRule asking for ISTIO_MUTUAL.
func meshInternal(host string, port int, san string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: httpbin-ns}
spec:
  hosts: [%[1]s]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %[2]d}}]
  subjectAltNames: [%[3]q]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %[1]s-mtls, namespace: httpbin-ns}
spec:
  host: %[1]s
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
`, host, port, san)
}

// TestMeshExample08BetweenTwoProxies runs example 08 between two meshentry instances with
// identities from a CA the test makes: client → meshentry (ISTIO_MUTUAL, SAN checked) →
// meshentry --inbound → an httpbin-like backend that echoes x-forwarded-client-cert.
func TestMeshExample08BetweenTwoProxies(t *testing.T) {
	t.Parallel()
	meshExample08(t, startRunArgs)
}

// meshExample08 runs example 08 with start running each meshentry: in this process, or as
// processes of their own (mesh_process_linux_test.go).
func meshExample08(t *testing.T, start func(t *testing.T, args ...string) map[string]net.Addr) {
	root := pki.NewCA(t, "cluster.local")
	issue := func(ns, sa string) string { return pki.Issue(t, root, "", ns, sa, ca.IssueOptions{}) }
	const (
		wantSAN  = "spiffe://cluster.local/ns/httpbin-ns/sa/httpbin-service-account"
		impostor = "spiffe://cluster.local/ns/httpbin-ns/sa/impostor"
		caller   = "spiffe://cluster.local/ns/shop/sa/sleep"
	)
	httpbin := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go httpbin.Serve(ln)
	t.Cleanup(func() { httpbin.Close() })

	unused := filepath.Join(t.TempDir(), "unused.yaml")
	os.WriteFile(unused, []byte(serviceEntry("unused", "unused.example.com", 9)), 0o644)
	inboundPort := func(dir string) int {
		spec := "127.0.0.1:0=" + ln.Addr().String()
		bound := start(t, "-f", unused, "--listen", "", "--admin", "", "--identity-dir", dir, "--inbound", spec)
		return bound["inbound "+spec].(*net.TCPAddr).Port
	}
	good, bad := inboundPort(issue("httpbin-ns", "httpbin-service-account")), inboundPort(issue("httpbin-ns", "impostor"))
	cfg := filepath.Join(t.TempDir(), "mesh.yaml")
	os.WriteFile(cfg, []byte(meshInternal("httpbin.com", good, wantSAN)+"---\n"+meshInternal("impostor.com", bad, wantSAN)), 0o644)
	out := start(t, "-f", cfg, "-n", "shop", "--listen", "127.0.0.1:0", "--admin", "", "--identity-dir", issue("shop", "sleep"))
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: out["forward proxy"].String()})},
		Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	t.Run("the SAN matches and httpbin sees the caller's identity in x-forwarded-client-cert", func(t *testing.T) {
		resp, err := client.Get("http://httpbin.com/headers")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%d; httpbin saw x-forwarded-client-cert: %s", resp.StatusCode, b)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "By="+wantSAN+";Hash=") || !strings.HasSuffix(string(b), `;Subject="";URI=`+caller) {
			t.Errorf("got %d with x-forwarded-client-cert %q", resp.StatusCode, b)
		}
	})
	t.Run("a server with another SPIFFE ID is refused with the reason", func(t *testing.T) {
		resp, err := client.Get("http://impostor.com/headers")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		reason := resp.Header.Get("x-meshentry-reason")
		t.Logf("%d; x-meshentry-reason: %s", resp.StatusCode, reason)
		if resp.StatusCode != 503 || !strings.Contains(reason, impostor) || !strings.Contains(reason, wantSAN) {
			t.Errorf("got %d with reason %q, want 503 naming %s and %s", resp.StatusCode, reason, impostor, wantSAN)
		}
	})
}
