package main

import (
	"context"
	"crypto/tls"
	"errors"
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

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// startRunWithIdentity runs `meshentry run --identity-dir dir` in-process on config and returns
// the bound addresses; the cleanup stops it.
func startRunWithIdentity(t *testing.T, config, dir string) map[string]net.Addr {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	cmd := newRunCommand()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0",
		adminAddr: "127.0.0.1:0", policy: "REGISTRY_ONLY", logLevel: "info", identity: identityFlags{dir: dir}}
	bound, err := launchRun(t, cmd, f, &stderr)
	if err != nil {
		t.Fatalf("run returned early: %v\n%s", err, stderr.String())
	}
	return bound
}

// issueTo writes default/SA of c into a fresh directory, valid from now-back for ttl.
func issueTo(t *testing.T, c *ca.CA, sa string, back, ttl time.Duration) string {
	t.Helper()
	return pki.Issue(t, c, "", "default", sa, ca.IssueOptions{Now: time.Now().Add(-back), TTL: ttl})
}

// mtlsServer serves HTTP behind mutual TLS as default/SA, answering with the caller's SPIFFE ID.
func mtlsServer(t *testing.T, c *ca.CA, sa string) int {
	t.Helper()
	src, err := identity.NewSource(identity.Options{Dir: issueTo(t, c, sa, 0, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// No NextProtos on the server: it ignores the client's Istio ALPN and speaks HTTP/1.1.
	ln = tls.NewListener(ln, src.ServerConfig())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := identity.PeerID(*r.TLS)
		fmt.Fprintf(w, "%s caller=%s err=%v", sa, id, err)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func TestRunWithIdentityDirDoesIstioMutualAndReportsAnExpiredIdentityOnReady(t *testing.T) {
	t.Parallel()
	c := pki.NewCA(t, "cluster.local")
	port := mtlsServer(t, c, "httpbin")
	// The client identity expires about 3 s from now, so /ready can be seen turning.
	clientDir := issueTo(t, c, "sleep", time.Hour, time.Hour+3*time.Second)
	bound := startRunWithIdentity(t, fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.mesh.test]
  location: MESH_INTERNAL
  ports: [{number: 8000, name: http, protocol: HTTP}]
  resolution: STATIC
  subjectAltNames: [spiffe://cluster.local/ns/default/sa/httpbin]
  endpoints: [{address: 127.0.0.1, ports: {http: %d}, labels: {security.istio.io/tlsMode: istio}}]
`, port), clientDir)
	proxyURL := &url.URL{Scheme: "http", Host: bound["forward proxy"].String()}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 5 * time.Second}

	t.Run("auto mTLS presents the identity from --identity-dir and checks the server's", func(t *testing.T) {
		code, body := fetchBody(t, client, "http://httpbin.mesh.test:8000/")
		if want := "httpbin caller=spiffe://cluster.local/ns/default/sa/sleep err=<nil>"; code != 200 || body != want {
			t.Fatalf("got %d %q, want 200 %q", code, body, want)
		}
	})
	t.Run("/ready lists the identity once it expired", func(t *testing.T) {
		admin := "http://" + bound["admin"].String() + "/ready"
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := fetchBody(t, http.DefaultClient, admin)
			if code != 200 && strings.Contains(body, "workload identity spiffe://cluster.local/ns/default/sa/sleep expired") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/ready still %d %q", code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

func TestRunRefusesAnIdentityDirWithoutAValidIdentity(t *testing.T) {
	t.Parallel()
	cmd := newRunCommand()
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, nil, 0o644)
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0",
		policy: "REGISTRY_ONLY", logLevel: "info", identity: identityFlags{dir: t.TempDir()}}
	err := runProxy(context.Background(), cmd, f, nil)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "--identity-dir") {
		t.Fatalf("run with an empty --identity-dir returned %v, want exit 2 naming the flag", err)
	}
}

// fetchBody GETs u with c and returns the status and body.
func fetchBody(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
