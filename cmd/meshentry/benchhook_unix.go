//go:build unix

package main

import (
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// benchHookEnv, set to 1, makes SIGUSR2 return the heap's free memory to the system at once
// (debug.FreeOSMemory), for bench/conncost.sh: what the idle connections hold is then what stays
// resident, not the free pages of an earlier in-flight peak that the runtime's scavenger returns
// only gradually. It is a benchmark aid, not an operating interface, hence no flag.
const benchHookEnv = "MESHENTRY_BENCH_FREE_OS_MEMORY"

func init() {
	if os.Getenv(benchHookEnv) != "1" {
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	go func() {
		for range sig {
			debug.FreeOSMemory()
		}
	}()
}
