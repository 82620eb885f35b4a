package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// Finding (attack): the guard lists the host's interface addresses once, when the first wildcard
// listener is recorded, and never again. An address the host gains later (DHCP lease, a new
// interface, a container bridge) reaches the wildcard admin listener, and the proxy under ALLOW_ANY
// forwards a request for it straight to the admin API: `GET http://NEWADDR:ADMINPORT/ready` through
// the forward proxy answers 200 "ready" from the admin server, and a CONNECT to it opens a tunnel.
// The admin listener must never be reachable through the proxy, whenever the address appeared.
func TestAttackAdminStaysUnreachableThroughAnAddressAddedAfterStart(t *testing.T) {
	ns := netns.New(t, "10.213.60.1/24")
	adminLn, err := ns.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	backend.Serve(t, "admin", adminLn)
	adminPort := uint16(adminLn.Addr().(*net.TCPAddr).Port)
	fwd, err := ns.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		AllowAny:  true,
		SelfAddrs: []netip.AddrPort{netip.AddrPortFrom(netip.IPv4Unspecified(), adminPort)},
		// Upstream dials happen inside the namespace and only to its private or loopback addresses.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || !(ap.Addr().IsLoopback() || ap.Addr().IsPrivate()) {
				return nil, fmt.Errorf("test dial refuses %q", addr)
			}
			var c net.Conn
			err = ns.Do(func() error {
				var d net.Dialer
				var derr error
				c, derr = d.DialContext(ctx, network, addr)
				return derr
			})
			return c, err
		},
	}
	// New lists the local addresses; run it inside the namespace so it sees the namespace's.
	var h *harness
	if err := ns.Do(func() error {
		h = serveSnapshot(t, fwd, compileSnapshot(t, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: none}\nspec:\n  hosts: [none.example.com]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints: [{address: 10.213.60.200}]\n"), cfg, "")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The host gains an address after the proxy started.
	ns.IP("addr", "add", "10.213.61.7/24", "dev", "test0")
	later := fmt.Sprintf("10.213.61.7:%d", adminPort)
	tests := []struct {
		name string
		req  string
	}{
		{name: "a forwarded GET to the admin port on the new address is refused as a loop", req: "GET http://" + later + "/ready HTTP/1.1\r\nHost: " + later + "\r\nConnection: close\r\n\r\n"},
		{name: "a CONNECT to the admin port on the new address is refused as a loop", req: "CONNECT " + later + " HTTP/1.1\r\nHost: " + later + "\r\n\r\nGET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ns.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Write([]byte(tc.req)); err != nil {
				t.Fatal(err)
			}
			var sb strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				sb.Write(buf[:n])
				if err != nil || strings.Contains(sb.String(), "admin") {
					break
				}
			}
			got := sb.String()
			if !strings.HasPrefix(got, "HTTP/1.1 508") || strings.Contains(got, "admin") {
				t.Fatalf("the admin listener was reached through the proxy: %q", got)
			}
		})
	}
}
