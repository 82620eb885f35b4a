// Package origdst recovers where a connection captured by iptables REDIRECT was originally headed.
package origdst

import "errors"

// ErrNotRedirected reports that a connection has no NAT rewrite to undo: it reached the listener directly,
// so its original destination is the listener itself and forwarding there would loop.
var ErrNotRedirected = errors.New("origdst: connection was not redirected (no NAT rewrite to undo)")
