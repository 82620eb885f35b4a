package main

import (
	"bytes"
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

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// startRun starts runProxy on config and returns the bound addresses, or the error it returned
// before listening; it stops the proxy when the test ends.
func startRun(t *testing.T, config string, allowInvalid bool) (map[string]net.Addr, error, *bytes.Buffer) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := newRunCommand()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0", adminAddr: "127.0.0.1:0",
		policy: "REGISTRY_ONLY", logLevel: "info", allowInvalid: allowInvalid}
	m, err := launchRun(t, cmd, f, nil)
	return m, err, &stderr
}

// get fetches u through the forward proxy at proxy and returns the status and body.
func get(t *testing.T, proxy net.Addr, u string) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: proxy.String()})}, Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func serviceEntry(name, host string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, name, host, port)
}

func TestRunRefusesInvalidConfigUnlessAllowed(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	good := serviceEntry("good", "api.example.com", be.Port())
	bad := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bad}\nspec:\n  hosts: [bad.example.com]\n  resolutoin: DNS\n"
	tests := []struct {
		name     string
		config   string
		wantLine int
	}{
		{name: "every document invalid", config: bad, wantLine: 6},
		{name: "one invalid document beside a valid one", config: good + "---\n" + bad, wantLine: 15},
	}
	for _, tc := range tests {
		t.Run("exits 1 before listening, printing the findings, when "+tc.name, func(t *testing.T) {
			bound, err, stderr := startRun(t, tc.config, false)
			if bound != nil {
				t.Fatalf("served on %v despite an invalid document", bound)
			}
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(err.Error(), "--allow-invalid") {
				t.Fatalf("run returned %v, want exit status 1 naming --allow-invalid", err)
			}
			if want := fmt.Sprintf(`config.yaml:%d: ServiceEntry default/bad: spec.resolutoin: unknown field "resolutoin"`, tc.wantLine); !strings.Contains(stderr.String(), want) {
				t.Fatalf("stderr lacks the finding %q:\n%s", want, stderr)
			}
		})
	}
	t.Run("serves the valid rest and logs the findings with --allow-invalid", func(t *testing.T) {
		bound, err, stderr := startRun(t, good+"---\n"+bad, true)
		if err != nil {
			t.Fatalf("run returned %v, want it serving", err)
		}
		if code, body := get(t, bound["forward proxy"], "http://api.example.com/x"); code != 200 || body != "api api.example.com /x" {
			t.Fatalf("valid host: got %d %q", code, body)
		}
		if code, _ := get(t, bound["forward proxy"], "http://bad.example.com/x"); code != 502 {
			t.Fatalf("host of the invalid document: got %d, want the 502 refusal", code)
		}
		if !strings.Contains(stderr.String(), "document left out") || !strings.Contains(stderr.String(), "resolutoin") {
			t.Fatalf("the finding was not logged:\n%s", stderr)
		}
	})
}

// TestRunReadsConfigsAsPeoplePublishThem starts the proxy on configs shaped as published ones
// (kubectl output, Go durations, manifests mixing kinds) and on one with a duplicate key.
func TestRunReadsConfigsAsPeoplePublishThem(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	indent := func(s string) string {
		return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
	}
	durations := "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: api}\nspec:\n  host: api.example.com\n" +
		"  trafficPolicy:\n    connectionPool: {tcp: {connectTimeout: 1m30s}, http: {idleTimeout: 500ms}}\n    outlierDetection: {interval: 1m, baseEjectionTime: 1h}\n"
	deployment := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec: {replicas: 1}\n"
	tests := []struct {
		name       string
		config     string
		wantServe  bool
		wantStderr string
	}{
		{
			name:      "serves the items of a kubectl List",
			config:    "apiVersion: v1\nkind: List\nitems:\n-" + indent(serviceEntry("api", "api.example.com", be.Port()))[1:] + "-" + indent(durations)[1:] + "-" + indent(deployment)[1:],
			wantServe: true, wantStderr: "skipped: Deployment (apps/v1) is not Istio config",
		},
		{
			name:      "serves beside a DestinationRule written with Go durations",
			config:    serviceEntry("api", "api.example.com", be.Port()) + "---\n" + durations,
			wantServe: true,
		},
		{
			name: "warns of a host and port another namespace declares with another protocol",
			config: serviceEntry("api", "api.example.com", be.Port()) + "---\n" +
				"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api-tcp, namespace: other}\n" +
				"spec: {hosts: [api.example.com], addresses: [10.1.1.1], ports: [{number: 80, name: tcp, protocol: TCP}], resolution: DNS}\n",
			wantServe: true, wantStderr: "warning [IST0177]: spec.ports[0].protocol: host",
		},
		{
			name: "warns of a host declared twice in one namespace",
			config: serviceEntry("api", "api.example.com", be.Port()) + "---\n" +
				"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: api-admin}\n" +
				"spec: {hosts: [api.example.com], ports: [{number: 8443, name: tls, protocol: TLS}], resolution: DNS}\n",
			wantServe: true, wantStderr: "warning [ME2007]: spec.hosts[0]: host",
		},
		{
			name: "serves beside a DYNAMIC_DNS entry, which Istio's validation accepts",
			config: serviceEntry("api", "api.example.com", be.Port()) + "---\n" +
				"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: any-example}\n" +
				"spec: {hosts: [\"*.dyn.example.com\"], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DYNAMIC_DNS}\n",
			wantServe: true,
		},
		{
			name:       "refuses to start on a second spec in one document",
			config:     serviceEntry("api", "api.example.com", be.Port()) + "spec:\n  hosts: [evil.example.com]\n",
			wantStderr: `duplicate key "spec": already set at line 4`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bound, err, stderr := startRun(t, tc.config, false)
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantStderr, stderr)
			}
			if !tc.wantServe {
				if bound != nil || err == nil {
					t.Fatalf("served on %v, want a refusal to start", bound)
				}
				return
			}
			if err != nil {
				t.Fatalf("run returned %v, want it serving", err)
			}
			if strings.Contains(stderr.String(), "level=ERROR") {
				t.Errorf("a document was left out:\n%s", stderr)
			}
			if code, body := get(t, bound["forward proxy"], "http://api.example.com/x"); code != 200 || body != "api api.example.com /x" {
				t.Fatalf("got %d %q", code, body)
			}
		})
	}
}
