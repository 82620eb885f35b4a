package main

import (
	"context"
	"encoding/json"
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

func TestRunWritesTheAccessLogWhereItsFlagsSay(t *testing.T) {
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
	file := filepath.Join(t.TempDir(), "access.log")
	tests := []struct {
		name   string
		flags  accessLogFlags
		output func(stdout string) string
		check  func(t *testing.T, log string)
	}{
		{name: "a text line goes to stdout with -, beside the listener lines",
			flags:  accessLogFlags{path: "-", format: "text", buffer: 16},
			output: func(stdout string) string { return stdout },
			check: func(t *testing.T, log string) {
				want := `"GET /x HTTP/1.1" 200 - via_upstream - "-" 0 22 `
				if !strings.Contains(log, want) || !strings.Contains(log, `"rid-cmd" "api.example.com" "127.0.0.1:`) ||
					!strings.Contains(log, "outbound|80||api.example.com") || !strings.Contains(log, "forward proxy listening on") {
					t.Errorf("stdout lacks the access-log line %q:\n%s", want, log)
				}
			}},
		{name: "a JSON line is appended to a file",
			flags: accessLogFlags{path: file, format: "json", buffer: 16},
			output: func(string) string {
				b, _ := os.ReadFile(file)
				return string(b)
			},
			check: func(t *testing.T, log string) {
				var rec map[string]any
				if err := json.Unmarshal([]byte(strings.TrimSpace(log)), &rec); err != nil {
					t.Fatalf("not one JSON line: %v\n%s", err, log)
				}
				if rec["request_id"] != "rid-cmd" || rec["response_code"] != 200.0 || rec["upstream_cluster"] != "outbound|80||api.example.com" {
					t.Errorf("record %v", rec)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout syncBuffer
			runAndGet(t, &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(),
				listen: "127.0.0.1:0", policy: "REGISTRY_ONLY", logLevel: "info", accessLog: tt.flags}, &stdout)
			// run has returned: the log was flushed and closed.
			tt.check(t, tt.output(stdout.String()))
		})
	}
}

func TestRunRefusesABadAccessLogFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		flags accessLogFlags
		want  string
	}{
		{name: "an unknown format is a usage error", flags: accessLogFlags{path: "-", format: "xml", buffer: 1}, want: "--access-log-format"},
		{name: "a buffer of no lines is a usage error", flags: accessLogFlags{path: "-", format: "text", buffer: 0}, want: "--access-log-buffer"},
		{name: "a file that cannot be opened fails the start",
			flags: accessLogFlags{path: filepath.Join(t.TempDir(), "missing", "dir", "access.log"), format: "text", buffer: 1}, want: "access log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.flags.open(io.Discard, nil)
			var ee *exitError
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.As(err, &ee) || ee.code != 2 {
				t.Errorf("open = %v, want exit status 2 naming %s", err, tt.want)
			}
		})
	}
}

// runAndGet runs `run` with f, sends one request for api.example.com/x through its forward
// proxy, and returns once run has stopped, its access log flushed and closed.
func runAndGet(t *testing.T, f *runFlags, stdout *syncBuffer) {
	t.Helper()
	var stderr syncBuffer
	cmd := newRunCommand()
	cmd.SetOut(stdout)
	cmd.SetErr(&stderr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	req, _ := http.NewRequest("GET", "http://api.example.com/x", nil)
	req.Header.Set("X-Request-Id", "rid-cmd")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	client.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}
