// Package netns gives tests a throwaway Linux network namespace with its own addresses and iptables
// rules, and sockets created inside it from the test process.
//
// Safety: traffic from these helpers only ever goes to loopback or to addresses the test assigned
// inside its own namespace. The namespace has no link to the outside (only lo and a dummy or veth
// interface whose both ends stay inside), Dial refuses any other destination before creating a socket,
// and New refuses addresses that are not private (RFC 1918, RFC 4193).
//
// The package builds on Linux only; elsewhere it is empty.
package netns
