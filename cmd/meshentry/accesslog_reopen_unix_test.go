//go:build unix

package main

import (
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// logrotate renames the access log away and sends SIGUSR1, as it does for Envoy: the lines that
// follow go to a new file at the same path, not on into the renamed one.
func TestRunReopensTheAccessLogOnSIGUSR1(t *testing.T) {
	// Not parallel: the signal reaches the whole test process. The guard keeps the default
	// action (terminating the test binary) away whatever happens to run's handler.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGUSR1)
	defer signal.Stop(guard)
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	file := filepath.Join(t.TempDir(), "access.log")
	bound, logs := startAdminRun(t, serviceEntry("api", "api.example.com", be.Port()), func(f *runFlags) {
		f.accessLog = accessLogFlags{path: file, format: "text", buffer: 16}
	})
	contains := func(path, want string) func() bool {
		return func() bool {
			b, _ := os.ReadFile(path)
			return strings.Contains(string(b), want)
		}
	}
	get(t, bound["forward proxy"], "http://api.example.com/before-rotation")
	pollUntil(t, "the first line is written", contains(file, "/before-rotation"))
	rotated := file + ".1"
	if err := os.Rename(file, rotated); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "the access log is reopened", func() bool { _, err := os.Stat(file); return err == nil })
	get(t, bound["forward proxy"], "http://api.example.com/after-rotation")
	pollUntil(t, "the next line goes to the new file", contains(file, "/after-rotation"))
	if contains(rotated, "/after-rotation")() {
		t.Error("a line written after SIGUSR1 went to the rotated file")
	}
	if !strings.Contains(logs.String(), "access log reopened") {
		t.Errorf("the reopen was not logged:\n%s", logs)
	}
	select {
	case <-guard:
	case <-time.After(5 * time.Second):
		t.Error("the guard did not see SIGUSR1")
	}
}
