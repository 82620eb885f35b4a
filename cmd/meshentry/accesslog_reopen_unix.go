//go:build unix

package main

import (
	"os"
	"syscall"
)

// reopenSignal asks for the access-log file to be opened again, as it asks Envoy.
var reopenSignal os.Signal = syscall.SIGUSR1
