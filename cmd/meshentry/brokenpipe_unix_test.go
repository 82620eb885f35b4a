//go:build unix

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// brokenPipeHelper names the environment variable that makes the test binary run `run` itself.
const brokenPipeHelper = "MESHENTRY_TEST_RUN_ARGS_CONFIG"

// TestRunHelperProcess is not a test: run as a child by TestRunSurvivesAReaderOfStdoutGoingAway,
// it serves `meshentry run` with its stdout on the parent's pipe.
func TestRunHelperProcess(t *testing.T) {
	cfg := os.Getenv(brokenPipeHelper)
	if cfg == "" {
		t.Skip("runs only as the child of TestRunSurvivesAReaderOfStdoutGoingAway")
	}
	cmd := newRootCommand(os.Stdin, os.Stdout, os.Stderr)
	cmd.SetArgs([]string{"run", "-f", cfg, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--dns-server", "127.0.0.1:1"})
	cmd.Execute()
}

// `meshentry run | some-log-shipper`: when the reader exits, a write to fd 1 raised SIGPIPE and
// Go's default for it killed the proxy, and all traffic with it, at the next access-log flush.
// The access log must count the failed writes and traffic go on.
func TestRunSurvivesAReaderOfStdoutGoingAway(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(serviceEntry("api", "api.example.com", be.Port())), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRunHelperProcess$")
	child.Env = append(os.Environ(), brokenPipeHelper+"="+cfg)
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = child.Wait()
		close(exited)
	}()
	defer func() {
		child.Process.Kill()
		<-exited
	}()
	// run prints the forward proxy's address, then the admin API's.
	lines := bufio.NewReader(stdout)
	var addrs []string
	for _, what := range []string{"forward proxy", "admin"} {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the child's line naming the %s: %v", what, err)
		}
		m := regexp.MustCompile(what + ` listening on (\S+)`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %q names no %s address", line, what)
		}
		addrs = append(addrs, m[1])
	}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addrs[0]})}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	stdout.Close() // the reader goes away
	// Each request's access-log line is flushed within a second; a few rounds over the flush
	// interval give the broken pipe every chance to show.
	for i := range 4 {
		select {
		case <-exited:
			t.Fatalf("run exited after the reader of its stdout went away (before request %d): %v", i, waitErr)
		default:
		}
		if code := status(client, fmt.Sprintf("http://api.example.com/%d", i)); code != 200 {
			t.Fatalf("request %d answered %d, want 200", i, code)
		}
		time.Sleep(600 * time.Millisecond)
	}
	pollUntil(t, "the failed access-log writes are counted", func() bool {
		resp, err := http.Get("http://" + addrs[1] + "/stats/prometheus")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^meshentry_access_log_write_errors_total (\d+)`).FindSubmatch(b)
		return m != nil && string(m[1]) != "0"
	})
}
