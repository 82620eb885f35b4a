package origdst

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// namespaceAddrs are the test addresses; they exist only inside each test's own namespace.
var namespaceAddrs = []string{"10.213.0.10/24", "fd00:213::10/64"}

// acceptOne dials addr from inside ns and returns the server side of the connection ln accepted.
func acceptOne(t *testing.T, ns *netns.Namespace, ln net.Listener, addr string) *net.TCPConn {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err := ns.Dial("tcp", addr)
	if err != nil {
		ln.Close()
		<-accepted
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { client.Close() })
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return server.(*net.TCPConn)
}

func TestOriginalDstUndoesRedirect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		listen   string
		iptables string // iptables or ip6tables
		dest     string // where the client dials; the rule redirects it to the listener
		want     string
	}{
		{
			name:     "recovers an IPv4 destination redirected to an IPv4 listener",
			listen:   "0.0.0.0:0",
			iptables: "iptables",
			dest:     "10.213.0.10:443",
			want:     "10.213.0.10:443",
		},
		{
			name:     "recovers an IPv6 destination redirected to an IPv6 listener",
			listen:   "[::]:0",
			iptables: "ip6tables",
			dest:     "[fd00:213::10]:443",
			want:     "[fd00:213::10]:443",
		},
		{
			name:     "recovers an unmapped IPv4 destination through a dual-stack listener",
			listen:   "[::]:0",
			iptables: "iptables",
			dest:     "10.213.0.10:443",
			want:     "10.213.0.10:443",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := netns.New(t, namespaceAddrs...)
			ln, err := ns.Listen("tcp", tt.listen)
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
			dest := netip.MustParseAddrPort(tt.dest)
			ns.Exec(tt.iptables, "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp",
				"-d", dest.Addr().String(), "--dport", strconv.Itoa(int(dest.Port())),
				"-j", "REDIRECT", "--to-ports", port)

			conn := acceptOne(t, ns, ln, tt.dest)
			got, err := OriginalDst(conn)
			if err != nil {
				t.Fatalf("OriginalDst (local %s): %v", conn.LocalAddr(), err)
			}
			if want := netip.MustParseAddrPort(tt.want); got != want {
				t.Errorf("OriginalDst = %s, want %s (local %s)", got, want, conn.LocalAddr())
			}
		})
	}
}

func TestOriginalDstRefusesConnectionsThatWereNotRedirected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		natRules bool // whether the namespace has NAT rules, which turns conntrack on
		listen   string
		dial     string // with the listener's port appended
	}{
		{name: "refuses an IPv4 connection made straight to the listener", natRules: true, listen: "0.0.0.0:0", dial: "10.213.0.10"},
		{name: "refuses an IPv6 connection made straight to the listener", natRules: true, listen: "[::]:0", dial: "fd00:213::10"},
		{name: "refuses a loopback connection made straight to the listener", natRules: true, listen: "127.0.0.1:0", dial: "127.0.0.1"},
		{name: "refuses a connection in a namespace without conntrack", natRules: false, listen: "0.0.0.0:0", dial: "10.213.0.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := netns.New(t, namespaceAddrs...)
			if tt.natRules {
				// Rules for another port: they load NAT and conntrack without touching this connection.
				ns.IPTables("-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "1", "-j", "REDIRECT", "--to-ports", "2")
				ns.IP6Tables("-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "1", "-j", "REDIRECT", "--to-ports", "2")
			}
			ln, err := ns.Listen("tcp", tt.listen)
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			conn := acceptOne(t, ns, ln, netip.AddrPortFrom(netip.MustParseAddr(tt.dial), port).String())
			checkNotRedirected(t, conn)
		})
	}
}

func TestOriginalDstRefusesAPlainLoopbackConnection(t *testing.T) {
	t.Parallel()
	// No namespace or root needed: whatever NAT the host has, a loopback connection is not redirected.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer server.Close()
	checkNotRedirected(t, server.(*net.TCPConn))
}

func checkNotRedirected(t *testing.T, conn *net.TCPConn) {
	t.Helper()
	got, err := OriginalDst(conn)
	if !errors.Is(err, ErrNotRedirected) {
		t.Fatalf("OriginalDst = (%s, %v), want ErrNotRedirected", got, err)
	}
	if !strings.Contains(err.Error(), "not redirected") {
		t.Errorf("error %q does not say the connection was not redirected", err)
	}
	t.Logf("OriginalDst: %v", err)
}
