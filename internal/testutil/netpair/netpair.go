// Package netpair gives tests both ends of a real socket connection, closed when the test ends.
package netpair

import (
	"net"
	"testing"
)

// Sockets connects to a fresh listener on network and addr (a loopback port, a socket path) and
// returns the dialed end and the accepted one. The kernel completes a loopback connection into
// the listen backlog, so the dial returns before the accept.
func Sockets(t testing.TB, network, addr string) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialed, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted, err = ln.Accept()
	if err != nil {
		dialed.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { dialed.Close(); accepted.Close() })
	return dialed, accepted
}

// TCP is Sockets on a loopback TCP port.
func TCP(t testing.TB) (dialed, accepted *net.TCPConn) {
	t.Helper()
	d, a := Sockets(t, "tcp", "127.0.0.1:0")
	return d.(*net.TCPConn), a.(*net.TCPConn)
}
