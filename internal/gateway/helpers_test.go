package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// harness is a gateway serving a config, with the proxy behind it.
type harness struct {
	gw    *Gateway
	addrs map[uint32]net.Addr
}

// startGateway serves yaml as the gateway labelled istio=egressgateway in namespace
// istio-system, every server port bound to an ephemeral loopback port; edit may change the
// config first. dnsAddr is the DNS server for names ("" for none).
func startGateway(t *testing.T, yaml, dnsAddr string, edit func(*Config)) *harness {
	t.Helper()
	gw := newGateway(t, yaml, dnsAddr, edit)
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		gw.cfg.Proxy.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	})
	return &harness{gw: gw, addrs: gw.Addrs()}
}

// newGateway makes the gateway startGateway serves, without listening.
func newGateway(t *testing.T, yaml, dnsAddr string, edit func(*Config)) *Gateway {
	t.Helper()
	snap := registry.Build(decode(t, yaml), 1)
	if dnsAddr == "" {
		dnsAddr = "127.0.0.1:1"
	}
	res, err := resolve.New(resolve.Config{Server: dnsAddr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	p := proxy.New(proxy.Config{Namespace: "istio-system", Resolver: res, MaxConnections: -1}, snap)
	cfg := Config{Bind: "127.0.0.1", Namespace: "istio-system", Labels: map[string]string{"istio": "egressgateway"}, Proxy: p,
		Ports: map[uint32]uint16{}}
	ls, err := Select(snap.Documents, cfg.Labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		cfg.Ports[l.Port] = 0
	}
	if edit != nil {
		edit(&cfg)
	}
	gw, err := New(cfg, snap)
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// client sends every request to the gateway's bound address of port, whatever its URL names,
// so that the URL's host is the Host field and the SNI.
func (h *harness) client(port uint32, tlsCfg *tls.Config) *http.Client {
	addr := h.addrs[port].String()
	tr := &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get fetches url and returns the status and body; a transport error is returned as is.
func get(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// credential writes a credential folder NAME under dir with a certificate for dnsNames issued
// by root, in the files a Kubernetes TLS secret mounts, and returns the folder.
func credential(t *testing.T, root *ca.CA, dir, name string, dnsNames ...string) string {
	t.Helper()
	src := pki.Issue(t, root, "", "istio-system", "gateway", ca.IssueOptions{DNSNames: dnsNames})
	folder := filepath.Join(dir, name)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{ca.CertChainFile: CertFile, ca.KeyFile: KeyFile, ca.RootCertFile: CAFile} {
		b, err := os.ReadFile(filepath.Join(src, from))
		if err != nil {
			t.Fatal(err)
		}
		// Written beside and renamed in, as a secret mount swaps files.
		tmp := filepath.Join(folder, "."+to+".tmp")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(folder, to)); err != nil {
			t.Fatal(err)
		}
	}
	return folder
}

// identitySource loads an identity for ns/sa issued by root.
func identitySource(t *testing.T, root *ca.CA, ns, sa string) *identity.Source {
	t.Helper()
	src, err := identity.NewSource(identity.Options{Dir: pki.Issue(t, root, "", ns, sa, ca.IssueOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// waitFor polls cond every 20 ms for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within 5 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Errorf("unexpected: %w", err))
	}
}
