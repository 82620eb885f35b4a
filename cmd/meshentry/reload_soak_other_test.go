//go:build !linux

package main

import "testing"

// capturedSoak has no captured proxy to offer without Linux network namespaces.
func capturedSoak(*testing.T) func(path string) *capturedProxy { return nil }
