package main

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestAcceptedClientSocketsHaveNoKeepAlive checks that the proxy's listeners give their client
// sockets no TCP keep-alive (as Envoy's), which Go's default would set with four system calls
// per connection; the admin listener is the same code path.
func TestAcceptedClientSocketsHaveNoKeepAlive(t *testing.T) {
	t.Parallel()
	lns, err := openListeners(&runFlags{listen: "127.0.0.1:0", captureListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer closeListeners(lns)
	for name, ln := range map[string]net.Listener{"forward proxy": lns.forward, "capture": lns.capture} {
		t.Run("the "+name+" listener's client sockets have no keep-alive", func(t *testing.T) {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			raw, err := sc.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var got int
			var gerr error
			if err := raw.Control(func(fd uintptr) {
				got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			}); err != nil || gerr != nil {
				t.Fatalf("getsockopt: %v %v", err, gerr)
			}
			if got != 0 {
				t.Errorf("SO_KEEPALIVE = %d on an accepted client socket, want 0", got)
			}
		})
	}
}
