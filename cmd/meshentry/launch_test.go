package main

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// launchRun runs runProxy(cmd, f) in this process until the test ends and returns the addresses
// it bound, or the error it returned before listening. At the end of the test it is stopped as
// SIGTERM stops it; the test fails when it does not stop within 10 s or stops with an error, and
// log (run's stderr, when given) is printed for a failed test.
func launchRun(t *testing.T, cmd *cobra.Command, f *runFlags, log fmt.Stringer) (map[string]net.Addr, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan map[string]net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runProxy(ctx, cmd, f, func(m map[string]net.Addr) { addrs <- m }) }()
	started := false
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if started && err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop after its context ended")
		}
		if t.Failed() && log != nil {
			t.Logf("run's log:\n%s", log)
		}
	})
	select {
	case m := <-addrs:
		started = true
		return m, nil
	case err := <-done:
		done <- err // for the cleanup
		return nil, err
	case <-time.After(10 * time.Second):
		t.Fatal("run neither started nor returned")
	}
	return nil, nil
}
