//go:build !linux

package main

import (
	"net"
	"testing"
)

// capturedSoak has no captured proxy to offer without Linux network namespaces.
func capturedSoak(*testing.T) func(path string) []net.Conn { return nil }
