//go:build unix

package main

import (
	"os/signal"
	"syscall"
)

// surviveBrokenPipes keeps a write to a stdout or stderr whose reader went away (`meshentry run |
// log-shipper`, the shipper restarting) from killing the proxy: Go's default for SIGPIPE on
// those descriptors is to exit. Ignored, such a write fails with EPIPE, which the access log
// counts as a write error, and traffic goes on; Envoy ignores SIGPIPE too.
func surviveBrokenPipes() { signal.Ignore(syscall.SIGPIPE) }
