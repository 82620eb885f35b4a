package main

import (
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

// reloadRun is `meshentry run -f PATH` started in-process on a config file the test rewrites.
type reloadRun struct {
	path  string
	bound map[string]net.Addr
	log   *syncBuffer
}

// startReloadRun writes config to a file in a temp folder and runs the proxy on it until the
// test ends, with reload as the reload flags.
func startReloadRun(t *testing.T, config string, reload reloadFlags) *reloadRun {
	t.Helper()
	return startReloadRunWith(t, config, func(f *runFlags) { f.reload = reload })
}

// startReloadRunWith is startReloadRun with the flags set by set.
func startReloadRunWith(t *testing.T, config string, set func(*runFlags)) *reloadRun {
	t.Helper()
	r := &reloadRun{path: filepath.Join(t.TempDir(), "config.yaml"), log: &syncBuffer{}}
	if err := os.WriteFile(r.path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newRunCommand()
	cmd.SetOut(io.Discard)
	cmd.SetErr(r.log)
	f := &runFlags{src: sourceFlags{files: []string{r.path}, namespace: "default"}, limits: defaultLimits(), listen: "127.0.0.1:0",
		adminAddr: "", policy: "REGISTRY_ONLY", logLevel: "info"}
	set(f)
	var err error
	if r.bound, err = launchRun(t, cmd, f, r.log); err != nil {
		t.Fatalf("run returned before serving: %v", err)
	}
	return r
}

// client returns a keep-alive HTTP client that uses the run's forward proxy.
func (r *reloadRun) client() *http.Client {
	u := &url.URL{Scheme: "http", Host: r.bound["forward proxy"].String()}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 4}, Timeout: 10 * time.Second}
}

// status fetches u and returns the status code, or 0 when the request failed.
func status(c *http.Client, u string) int {
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// replace writes content to path through a temporary file renamed over it, as editors do.
func replace(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// pollUntil calls cond every 2 ms until it holds, failing the test after 10 s.
func pollUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// misspelled is a ServiceEntry whose sixth line has an unknown field.
func misspelled(name string) string {
	return "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: " + name + "}\nspec:\n  hosts: [" + name + ".example.com]\n  resolutoin: DNS\n"
}

func TestRunReloadsItsConfig(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	r := startReloadRun(t, serviceEntry("old", "old.example.com", be.Port()), reloadFlags{})
	c := r.client()
	if code := status(c, "http://old.example.com/"); code != 200 {
		t.Fatalf("startup config: %d", code)
	}
	t.Run("serves a changed file without a restart", func(t *testing.T) {
		replace(t, r.path, serviceEntry("new", "new.example.com", be.Port()))
		pollUntil(t, "the new host is served", func() bool { return status(c, "http://new.example.com/") == 200 })
		if code := status(c, "http://old.example.com/"); code != 502 {
			t.Fatalf("the host the change removed: %d, want 502", code)
		}
		if !strings.Contains(r.log.String(), "msg=\"config reloaded\" version=2 services=1") {
			t.Fatalf("log lacks the reload line:\n%s", r.log)
		}
	})
	t.Run("refuses an invalid change whole and keeps serving", func(t *testing.T) {
		replace(t, r.path, serviceEntry("new", "new.example.com", be.Port())+"---\n"+serviceEntry("more", "more.example.com", be.Port())+"---\n"+misspelled("bad"))
		pollUntil(t, "the refusal is logged", func() bool { return strings.Contains(r.log.String(), "config reload refused") })
		want := r.path + `:24: ServiceEntry default/bad: spec.resolutoin: unknown field`
		if !strings.Contains(r.log.String(), want) {
			t.Fatalf("log lacks the finding %q:\n%s", want, r.log)
		}
		if code := status(c, "http://more.example.com/"); code != 502 {
			t.Fatalf("a valid host of the refused change: %d, want 502 (refused whole)", code)
		}
		if code := status(c, "http://new.example.com/"); code != 200 {
			t.Fatalf("the serving host after a refused change: %d", code)
		}
	})
}

func TestRunWarnsWhenTheConfigDeclaresNoService(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		config   string
		wantWarn bool
	}{
		{name: "warns for an empty file", config: "", wantWarn: true},
		{name: "warns for a file of comments", config: "# nothing yet\n", wantWarn: true},
		{name: "stays quiet for a file that declares a service", config: serviceEntry("api", "api.example.com", 80)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, logs := startAdminRun(t, tc.config, nil)
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "declares no service")
			if warned != tc.wantWarn {
				t.Errorf("warned %v, want %v; log:\n%s", warned, tc.wantWarn, logs)
			}
		})
	}
}
