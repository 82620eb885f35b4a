//go:build unix

package proxy

import "syscall"

// defaultMaxConnections derives the connection cap from the descriptor limit: each downstream
// connection costs its own socket, its upstream's, and room for one pooled idle upstream, and
// reservedFDs stay free for listeners, the admin API, DNS and logs, so the cap is reached before
// the process runs out of descriptors. (Go raises the soft limit to the hard one at start.)
func defaultMaxConnections() int {
	var rl syscall.Rlimit // Cur is ^0 for RLIM_INFINITY
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == ^uint64(0) {
		return fallbackMaxConnections
	}
	return capFromFDs(rl.Cur)
}
