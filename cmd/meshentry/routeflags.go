package main

import (
	"time"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/proxy"
)

// routeFlags bound what a VirtualService's http actions may hold: the request bodies kept for
// retries and mirrors, and the mirrored requests in flight.
type routeFlags struct {
	maxReplayBytes int
	maxMirrors     int
	mirrorTimeout  time.Duration
}

func (r *routeFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&r.maxReplayBytes, "max-retry-body-bytes", 1<<20, "request body bytes held so that a route's retries and mirror can send the body again (Envoy's 1 MiB buffer limit); a larger or chunked body is sent once, not retried after it went out, nor mirrored")
	fl.IntVar(&r.maxMirrors, "max-mirrors", 128, "mirrored requests in flight; a copy beyond them is dropped and counted, so a slow mirror never holds originals back")
	fl.DurationVar(&r.mirrorTimeout, "mirror-timeout", 15*time.Second, "bound on one mirrored exchange (Envoy's default route timeout)")
}

// apply checks the flags and puts them in cfg; zero (a runFlags made without its flags, as
// tests make them) takes the defaults.
func (r *routeFlags) apply(cfg *proxy.Config) error {
	if r.maxReplayBytes < 0 || r.maxMirrors < 0 || r.mirrorTimeout < 0 {
		return usageError("--max-retry-body-bytes, --max-mirrors and --mirror-timeout must not be negative")
	}
	cfg.HTTP.MaxReplayBytes = r.maxReplayBytes
	cfg.HTTP.MaxMirrors = r.maxMirrors
	cfg.HTTP.MirrorTimeout = r.mirrorTimeout
	return nil
}
