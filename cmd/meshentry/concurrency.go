package main

import (
	"runtime"

	"github.com/spf13/pflag"
)

// concurrencyFlag is Envoy's --concurrency: how many threads run the proxy's work at once. Left
// at 0, Go's default applies (one per CPU the process may use), as Envoy defaults to one worker
// per hardware thread; a sidecar beside an application is often given fewer, as Istio gives its
// sidecars 2.
type concurrencyFlag struct{ n int }

func (c *concurrencyFlag) register(fl *pflag.FlagSet) {
	fl.IntVar(&c.n, "concurrency", 0, "threads that run the proxy at once (Envoy's --concurrency, Go's GOMAXPROCS); 0: one per CPU")
}

// apply sets the process's thread count when the flag asks for one.
func (c *concurrencyFlag) apply() error {
	if c.n < 0 {
		return usageError("--concurrency must not be negative, got %d", c.n)
	}
	if c.n > 0 {
		runtime.GOMAXPROCS(c.n)
	}
	return nil
}
