package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// issueShop writes an identity for shop/sa signed by c into a fresh directory.
func issueShop(t *testing.T, c *ca.CA, sa string) string {
	t.Helper()
	return pki.Issue(t, c, "", "shop", sa, ca.IssueOptions{})
}

// startInboundRun runs `meshentry run --inbound 127.0.0.1:0=target` with the identity in dir and
// returns the bound addresses; the run stops when the test ends.
func startInboundRun(t *testing.T, dir, target string) map[string]net.Addr {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(serviceEntry("api", "api.example.com", 9)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	cmd := newRunCommand()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0",
		adminAddr: "127.0.0.1:0", policy: "REGISTRY_ONLY", logLevel: "info",
		inbound:  inboundFlags{specs: []string{"127.0.0.1:0=" + target}, maxConnections: 16, handshakeTimeout: 5 * time.Second},
		identity: identityFlags{dir: dir}}
	bound, err := launchRun(t, cmd, f, &stderr)
	if err != nil {
		t.Fatalf("run returned early: %v\n%s", err, stderr.String())
	}
	return bound
}

func TestRunInboundTerminatesMutualTLSAndForwardsTheCallersIdentity(t *testing.T) {
	t.Parallel()
	root := pki.NewCA(t, "cluster.local")
	serverDir, clientDir := issueShop(t, root, "httpbin"), issueShop(t, root, "sleep")
	be := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	beLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go be.Serve(beLn)
	t.Cleanup(func() { be.Close() })
	bound := startInboundRun(t, serverDir, beLn.Addr().String())
	inboundAddr := bound["inbound 127.0.0.1:0="+beLn.Addr().String()]
	if inboundAddr == nil {
		t.Fatalf("no inbound listener among %v", bound)
	}

	t.Run("forwards a mesh client's request with its SPIFFE ID in x-forwarded-client-cert", func(t *testing.T) {
		src, err := identity.NewSource(identity.Options{Dir: clientDir})
		if err != nil {
			t.Fatal(err)
		}
		cfg := src.ClientConfig()
		cfg.NextProtos = []string{"istio-peer-exchange", "istio"}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", inboundAddr.String(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET /headers HTTP/1.1\r\nHost: httpbin.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := ";Subject=\"\";URI=spiffe://cluster.local/ns/shop/sa/sleep"
		if !strings.HasPrefix(string(body), "By=spiffe://cluster.local/ns/shop/sa/httpbin;Hash=") || !strings.HasSuffix(string(body), want) {
			t.Errorf("backend saw x-forwarded-client-cert %q", body)
		}
	})
	t.Run("counts connections and refused handshakes in /stats/prometheus", func(t *testing.T) {
		bad, err := tls.Dial("tcp", inboundAddr.String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"istio"}})
		if err == nil {
			bad.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = bad.Read(make([]byte, 1)) // the server's alert arrives here under TLS 1.3
			bad.Close()
		}
		if err == nil {
			t.Fatal("a client without a certificate was not refused")
		}
		listener := `listener="inbound_` + beLn.Addr().String() + `"`
		want := []string{
			`meshentry_inbound_connections_total{forwarded="http",` + listener + `} 1`,
			`meshentry_inbound_handshake_failures_total{` + listener + `,reason="other"} 1`,
			`meshentry_inbound_handshake_failures_total{` + listener + `,reason="peer"} 0`,
		}
		var body string
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + bound["admin"].String() + "/stats/prometheus")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			missing := ""
			for _, w := range want {
				if !strings.Contains(body, w) {
					missing = w
				}
			}
			if missing == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/stats/prometheus lacks %s:\n%s", missing, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("lists the inbound listener in /listeners and is ready", func(t *testing.T) {
		admin := "http://" + bound["admin"].String()
		for path, want := range map[string]string{"/listeners": "inbound_" + beLn.Addr().String() + "::" + inboundAddr.String(), "/ready": "ready"} {
			resp, err := http.Get(admin + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
				t.Errorf("%s = %d %q, want it to contain %q", path, resp.StatusCode, b, want)
			}
		}
	})
}

func TestRunRefusesBadInboundFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		specs []string
		want  string
	}{
		{name: "refuses --inbound without --identity-dir", specs: []string{"127.0.0.1:0=127.0.0.1:8080"}, want: "needs --identity-dir"},
		{name: "refuses a value without an equals sign", specs: []string{"127.0.0.1:16443"}, want: "want LISTEN=TARGET"},
		{name: "refuses a target that is not a host:port", specs: []string{"127.0.0.1:0=localhost"}, want: "is not a host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := openInbound(&inboundFlags{specs: tt.specs, handshakeTimeout: time.Second}, &proxy.Config{}, nil)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want exit status 2 saying %q", err, tt.want)
			}
		})
	}
}
