//go:build unix

package main

import (
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

func TestOnSIGHUP(t *testing.T) {
	// Not parallel: the signal reaches the whole test process. The guard keeps the default action
	// (terminating the test binary) away for the whole test, whatever happens to the handler.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	calls := make(chan struct{}, 4)
	stop := onSIGHUP(func() { calls <- struct{}{} })
	t.Run("calls reload for a SIGHUP sent to the process", func(t *testing.T) {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatal("reload was not called within 5 s of SIGHUP")
		}
	})
	stop()
	stop() // a second stop is harmless
	t.Run("stops calling reload once stopped", func(t *testing.T) {
		<-guard // the first signal, which the guard saw too
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		select {
		case <-guard:
		case <-time.After(5 * time.Second):
			t.Fatal("the guard did not see the second SIGHUP")
		}
		select {
		case <-calls:
			t.Fatal("reload was called after stop")
		default:
		}
	})
}

func TestRunReloadsOnSIGHUP(t *testing.T) {
	// Not parallel, as TestOnSIGHUP; the guard keeps the signal from killing the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	// File events wait an hour and there is no periodic check: only SIGHUP can load the change.
	r := startReloadRun(t, serviceEntry("old", "old.example.com", be.Port()), reloadFlags{debounce: time.Hour})
	replace(t, r.path, serviceEntry("new", "new.example.com", be.Port()))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	c := r.client()
	pollUntil(t, "the change is served after SIGHUP", func() bool { return status(c, "http://new.example.com/") == 200 })
	if !strings.Contains(r.log.String(), "msg=\"config reloaded\" version=2") {
		t.Fatalf("log lacks the reload line:\n%s", r.log)
	}
}
