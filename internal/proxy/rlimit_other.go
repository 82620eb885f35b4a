//go:build !unix

package proxy

// defaultMaxConnections is fallbackMaxConnections where the descriptor limit cannot be read.
func defaultMaxConnections() int { return fallbackMaxConnections }
