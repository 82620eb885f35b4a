package proxy

import (
	"net"
	"testing"
)

func TestOpenConnectionsFollowTheTunnels(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo.Addr().String())
	t.Run("counts open tunnels and forgets closed ones", func(t *testing.T) {
		t.Parallel()
		h := startProxy(t, echoEntry(port), Config{MaxConnections: 10}, "")
		var tunnels []net.Conn
		for range 3 {
			c, status := h.connect(t, "echo.internal:7000")
			if status != 200 {
				t.Fatalf("CONNECT = %d", status)
			}
			tunnels = append(tunnels, c)
		}
		waitFor(t, func() bool { n, ok := h.p.OpenConnections(); return ok && n == 3 }, "3 open connections")
		tunnels[0].Close()
		tunnels[1].Close()
		waitFor(t, func() bool { n, _ := h.p.OpenConnections(); return n == 1 }, "1 open connection after two closed")
		tunnels[2].Close()
	})
	t.Run("says it does not count without a cap", func(t *testing.T) {
		t.Parallel()
		h := startProxy(t, echoEntry(port), Config{MaxConnections: -1}, "")
		if _, ok := h.p.OpenConnections(); ok {
			t.Error("OpenConnections claims a count with no connection cap")
		}
	})
}
