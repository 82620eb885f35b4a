//go:build !unix

package main

import "os"

// reopenSignal is nil where there is no SIGUSR1: the file is not reopened.
var reopenSignal os.Signal
