package main

import (
	"bytes"
	"context"
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

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// TestRunServesTheForwardProxyAndAdmin drives `meshentry run` in-process: it must serve a declared
// host through the forward proxy, answer /ready and /healthz, never forward to its own listeners,
// and stop cleanly when its context ends.
func TestRunServesTheForwardProxyAndAdmin(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: example-api}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, be.Port())), 0o644)

	var stdout, stderr bytes.Buffer
	cmd := newRunCommand()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0", adminAddr: "127.0.0.1:0", policy: "ALLOW_ANY", logLevel: "info"}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan map[string]net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, cmd, f, func(m map[string]net.Addr) { addrs <- m }) }()
	var bound map[string]net.Addr
	select {
	case bound = <-addrs:
	case err := <-done:
		t.Fatalf("run returned early: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("run did not start")
	}
	proxyURL := &url.URL{Scheme: "http", Host: bound["forward proxy"].String()}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 5 * time.Second}
	fetch := func(c *http.Client, u string) (int, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Run("forwards a declared host", func(t *testing.T) {
		if code, body := fetch(client, "http://api.example.com/x"); code != 200 || body != "api api.example.com /x" {
			t.Fatalf("got %d %q", code, body)
		}
	})
	t.Run("reports ready and alive", func(t *testing.T) {
		admin := "http://" + bound["admin"].String()
		if code, body := fetch(http.DefaultClient, admin+"/ready"); code != 200 || body != "ready\n" {
			t.Fatalf("/ready = %d %q", code, body)
		}
		if code, _ := fetch(http.DefaultClient, admin+"/healthz"); code != 200 {
			t.Fatalf("/healthz = %d", code)
		}
	})
	t.Run("never reaches its own admin API or listener through the proxy, even under ALLOW_ANY", func(t *testing.T) {
		for _, target := range []string{"http://" + bound["admin"].String() + "/debug/pprof/", "http://" + bound["forward proxy"].String() + "/"} {
			if code, body := fetch(client, target); code != http.StatusLoopDetected {
				t.Fatalf("GET %s through the proxy: %d %q, want 508", target, code, body)
			}
		}
	})
	t.Run("prints where it listens", func(t *testing.T) {
		for _, want := range []string{"forward proxy listening on " + bound["forward proxy"].String(), "admin listening on"} {
			if !strings.Contains(stdout.String(), want) {
				t.Fatalf("stdout %q lacks %q", stdout.String(), want)
			}
		}
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop after its context ended")
	}
}

// defaultLimits is what `run` gets when no limit flag is given.
func defaultLimits() limitFlags {
	var l limitFlags
	l.register(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return l
}
