package main

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestRunSurvivesTheReopenSignalWithoutAFile sends SIGUSR1, which logrotate sends to reopen
// access logs, to a run whose access log is off. Go's runtime ignores SIGUSR1 unless a handler
// is installed, and run installs one only for an access-log file; this keeps it that way, since
// the signal's system default would kill the proxy and its traffic.
func TestRunSurvivesTheReopenSignalWithoutAFile(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte(serviceEntry("api", "api.example.com", 9)), 0o644); err != nil {
		t.Fatal(err)
	}
	bound, proc := startProc1(t, "-f", cfg, "--listen", "", "--admin", "127.0.0.1:0")
	for range 3 {
		if err := proc.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + bound["admin"].String() + "/ready")
	if err != nil {
		t.Fatalf("after SIGUSR1 the admin API is gone: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/ready after SIGUSR1: %d", resp.StatusCode)
	}
}
