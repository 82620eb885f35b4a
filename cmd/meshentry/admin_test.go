package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startAdminRun starts runProxy on config with the forward proxy and admin API on 127.0.0.1:0;
// edit adjusts the flags. It returns the bound addresses and run's log, and stops run at the end.
func startAdminRun(t *testing.T, config string, edit func(*runFlags)) (map[string]net.Addr, *syncBuffer) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd := newRunCommand()
	cmd.SetOut(io.Discard)
	cmd.SetErr(stderr)
	f := &runFlags{src: sourceFlags{files: []string{cfg}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0",
		adminAddr: "127.0.0.1:0", policy: "REGISTRY_ONLY", logLevel: "info", dnsServer: "127.0.0.1:1"}
	if edit != nil {
		edit(f)
	}
	m, err := launchRun(t, cmd, f, stderr)
	if err != nil {
		t.Fatalf("run returned before listening: %v\n%s", err, stderr)
	}
	return m, stderr
}

// adminGet sends method to the admin API at addr and returns the status and body.
func adminGet(t *testing.T, method string, addr net.Addr, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr.String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunServesTheAdminAPI(t *testing.T) {
	t.Parallel()
	config := serviceEntry("api", "api.example.com", 1)
	t.Run("keeps pprof off without --admin-pprof", func(t *testing.T) {
		t.Parallel()
		bound, _ := startAdminRun(t, config, nil)
		if code, _ := adminGet(t, "GET", bound["admin"], "/debug/pprof/goroutine?debug=1"); code != 404 {
			t.Errorf("pprof without the flag = %d, want 404", code)
		}
	})
	t.Run("serves pprof with --admin-pprof", func(t *testing.T) {
		t.Parallel()
		bound, _ := startAdminRun(t, config, func(f *runFlags) { f.admin.pprof = true })
		if code, body := adminGet(t, "GET", bound["admin"], "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
			t.Errorf("pprof with the flag = %d", code)
		}
	})
	t.Run("changes the level run logs at through /logging", func(t *testing.T) {
		t.Parallel()
		bound, logs := startAdminRun(t, config, nil)
		// A refused request logs a line below error, so level error hides it and info shows it.
		if code, body := adminGet(t, "POST", bound["admin"], "/logging?level=error"); code != 200 || !strings.Contains(body, "meshentry: error") {
			t.Fatalf("POST /logging?level=error = %d %q", code, body)
		}
		get(t, bound["forward proxy"], "http://refused.example.com/")
		if strings.Contains(logs.String(), "refused.example.com") {
			t.Errorf("a warning was logged at level error:\n%s", logs)
		}
		if code, _ := adminGet(t, "POST", bound["admin"], "/logging?level=info"); code != 200 {
			t.Fatalf("POST /logging?level=info = %d", code)
		}
		get(t, bound["forward proxy"], "http://refused-again.example.com/")
		if !strings.Contains(logs.String(), "refused-again.example.com") {
			t.Errorf("the refusal was not logged once back at info:\n%s", logs)
		}
	})
	t.Run("warns when the admin API listens beyond loopback", func(t *testing.T) {
		t.Parallel()
		// Bound on every address for the test's length only; no traffic leaves loopback.
		_, logs := startAdminRun(t, config, func(f *runFlags) { f.adminAddr = "0.0.0.0:0" })
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "non-loopback") {
			t.Errorf("no warning for an admin API on 0.0.0.0:\n%s", logs)
		}
	})
	t.Run("counts dumps refused at --admin-max-dumps in the metrics", func(t *testing.T) {
		t.Parallel()
		bound, _ := startAdminRun(t, config, func(f *runFlags) { f.admin.maxDumps = 1; f.admin.busy.Store(3) })
		code, body := adminGet(t, "GET", bound["admin"], "/stats/prometheus")
		if code != 200 || !strings.Contains(body, "\nmeshentry_admin_busy_total 3\n") {
			t.Errorf("/stats/prometheus = %d, want meshentry_admin_busy_total 3 in:\n%s", code, body)
		}
	})
	t.Run("fills config_dump's last reload from the startup load", func(t *testing.T) {
		t.Parallel()
		bound, _ := startAdminRun(t, config, nil)
		code, body := adminGet(t, "GET", bound["admin"], "/config_dump")
		if code != 200 || !strings.Contains(body, `"accepted": 1`) || !strings.Contains(body, `"ok": true`) || !strings.Contains(body, "config.yaml:1") {
			t.Errorf("/config_dump = %d %s", code, body)
		}
	})
}

func TestWarnIfExposed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		addr     net.Addr
		wantWarn bool
	}{
		{name: "stays quiet on 127.0.0.1", addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 15000}},
		{name: "stays quiet on ::1", addr: &net.TCPAddr{IP: net.IPv6loopback, Port: 15000}},
		{name: "warns on every IPv4 address", addr: &net.TCPAddr{IP: net.IPv4zero, Port: 15000}, wantWarn: true},
		{name: "warns on every IPv6 address", addr: &net.TCPAddr{IP: net.IPv6unspecified, Port: 15000}, wantWarn: true},
		{name: "warns on a routable address", addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 15000}, wantWarn: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			warned := warnIfExposed(slog.New(slog.NewTextHandler(&buf, nil)), tc.addr)
			if warned != tc.wantWarn || strings.Contains(buf.String(), "level=WARN") != tc.wantWarn {
				t.Errorf("warned %v, log %q; want warning %v", warned, buf.String(), tc.wantWarn)
			}
			if tc.wantWarn && !strings.Contains(buf.String(), tc.addr.String()) {
				t.Errorf("the warning does not name the address %s: %q", tc.addr, buf.String())
			}
		})
	}
}
