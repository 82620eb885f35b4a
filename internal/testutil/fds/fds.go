// Package fds counts the test process's descriptors by kind, for tests that check what an idle
// connection holds.
package fds

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Count is how many pipe and socket descriptors the process has open.
type Count struct{ Pipes, Sockets int }

// Now counts this process's pipe and socket descriptors; it skips the test without /proc.
func Now(tb testing.TB) Count {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("no /proc/self/fd: %v", err)
	}
	var c Count
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		switch {
		case err != nil:
		case strings.HasPrefix(target, "pipe:"):
			c.Pipes++
		case strings.HasPrefix(target, "socket:"):
			c.Sockets++
		}
	}
	return c
}

// Settled counts again until no more pipes are open than before, or 2 s passed. Go pools splice
// pipes process-wide until a garbage collection frees them, so the count is taken after GCs; a
// splice blocked on an idle socket keeps its pipe whatever the GC does.
func Settled(tb testing.TB, before Count) Count {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		runtime.GC()
		now := Now(tb)
		if now.Pipes <= before.Pipes || time.Now().After(deadline) {
			return now
		}
		time.Sleep(20 * time.Millisecond)
	}
}
