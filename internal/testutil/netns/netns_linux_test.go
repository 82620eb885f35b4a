package netns

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestSocketsInsideTheNamespaceReachItsAddresses(t *testing.T) {
	t.Parallel()
	ns := New(t, "10.213.0.10/24", "fd00:213::10/64")
	tests := []struct {
		name   string
		listen string
	}{
		{name: "connects to an IPv4 address assigned in the namespace", listen: "10.213.0.10:0"},
		{name: "connects to an IPv6 address assigned in the namespace", listen: "[fd00:213::10]:0"},
		{name: "connects to the namespace's own loopback", listen: "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := ns.Listen("tcp", tt.listen)
			if err != nil {
				t.Fatalf("Listen: %v", err)
			}
			accepted := make(chan error, 1)
			go func() {
				accepted <- func() error {
					c, err := ln.Accept()
					if err != nil {
						return err
					}
					defer c.Close()
					_, err = c.Write([]byte("hi"))
					return err
				}()
			}()
			c, err := ns.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "hi" {
				t.Errorf("read (%q, %v), want (\"hi\", nil)", got, err)
			}
			if err := <-accepted; err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
}

func TestAddressesExistOnlyInsideTheNamespace(t *testing.T) {
	t.Parallel()
	New(t, "10.213.0.20/24")
	// Binding sends nothing: it only asks whether the address is local here, outside the namespace.
	ln, err := net.Listen("tcp", "10.213.0.20:0")
	if err == nil {
		ln.Close()
		t.Fatal("the test address is bindable outside the namespace")
	}
	if !errors.Is(err, unix.EADDRNOTAVAIL) {
		t.Errorf("listen outside = %v, want EADDRNOTAVAIL", err)
	}
}

func TestDialRefusesAddressesOutsideTheNamespace(t *testing.T) {
	t.Parallel()
	ns := New(t, "10.213.0.30/24")
	tests := []struct {
		name string
		addr string
	}{
		{name: "refuses a public address", addr: "192.0.2.1:80"},
		{name: "refuses an unassigned address in the namespace's subnet", addr: "10.213.0.31:80"},
		{name: "refuses a host name, which would need a resolver", addr: "localhost:80"},
		{name: "refuses the unspecified address", addr: "0.0.0.0:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if c, err := ns.Dial("tcp", tt.addr); err == nil {
				c.Close()
				t.Fatalf("Dial(%s) succeeded, want a refusal", tt.addr)
			}
		})
	}
}

func TestDoReturnsTheThreadToItsNamespace(t *testing.T) {
	t.Parallel()
	ns := New(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNetns(t)
	var inside string
	if err := ns.Do(func() error {
		inside = threadNetns(t)
		return nil
	}); err != nil {
		t.Fatalf("Do: %v", err)
	}
	if after := threadNetns(t); after != before {
		t.Errorf("thread namespace is %s after Do, want %s", after, before)
	}
	if inside == before {
		t.Errorf("fn ran in the original namespace %s", inside)
	}
}

func threadNetns(t *testing.T) string {
	t.Helper()
	link, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatalf("readlink: %v", err)
	}
	return link
}

func TestIPTablesRulesLandInTheNamespace(t *testing.T) {
	t.Parallel()
	ns := New(t, "10.213.0.40/24", "fd00:213::40/64")
	ns.IPTables("-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.213.0.40", "--dport", "443", "-j", "REDIRECT", "--to-ports", "8443")
	ns.IP6Tables("-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "fd00:213::40", "--dport", "443", "-j", "REDIRECT", "--to-ports", "8443")
	if rules := ns.IPTables("-t", "nat", "-S", "OUTPUT"); !strings.Contains(rules, "--to-ports 8443") {
		t.Errorf("iptables rules in the namespace:\n%s\nwant the REDIRECT rule", rules)
	}
	if rules := ns.IP6Tables("-t", "nat", "-S", "OUTPUT"); !strings.Contains(rules, "--to-ports 8443") {
		t.Errorf("ip6tables rules in the namespace:\n%s\nwant the REDIRECT rule", rules)
	}
}

func TestCleanupDeletesTheNamespace(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("creates a namespace", func(t *testing.T) {
		name = New(t).Name
		if _, err := os.Stat(filepath.Join("/run/netns", name)); err != nil {
			t.Fatalf("namespace missing while the test runs: %v", err)
		}
	})
	if name == "" {
		t.Skip("the subtest was skipped")
	}
	if _, err := os.Stat(filepath.Join("/run/netns", name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s still exists after its test ended (stat: %v)", name, err)
	}
}

// fatalTB records a Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = format
	f.mu.Unlock()
	runtime.Goexit()
}

func TestNewRefusesAddressesThatAreNotPrivate(t *testing.T) {
	t.Parallel()
	if why := Requirements(); why != "" {
		t.Skip(why)
	}
	tests := []struct {
		name   string
		prefix string
	}{
		{name: "refuses a public IPv4 address", prefix: "8.8.8.8/32"},
		{name: "refuses a global IPv6 address", prefix: "2001:db8::1/64"},
		{name: "refuses something that is not an address", prefix: "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &fatalTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				New(rec, tt.prefix)
			}()
			<-done
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if rec.msg == "" {
				t.Errorf("New(%q) did not fail", tt.prefix)
			}
		})
	}
}
