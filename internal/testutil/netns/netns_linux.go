package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Namespace is a network namespace created for one test and deleted by its cleanup.
type Namespace struct {
	// Name is the namespace's name under /run/netns, for `ip netns exec`.
	Name string

	tb    testing.TB
	fd    int // an open handle on the namespace, for setns(2)
	addrs []netip.Addr
}

// Requirements returns why network namespace tests cannot run here, or "" when they can: they need root
// and the ip, iptables and ip6tables commands.
func Requirements() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	var missing []string
	for _, cmd := range []string{"ip", "iptables", "ip6tables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, cmd)
		}
	}
	if len(missing) > 0 {
		return "needs " + strings.Join(missing, ", ") + " in PATH (apt-get install iproute2 iptables)"
	}
	return ""
}

// New creates a network namespace with lo up and an interface holding the given addresses (CIDR
// prefixes such as "10.213.0.10/24" or "fd00:213::10/64"), and deletes it when the test ends.
//
// It skips the test when Requirements are not met; once they are, any failure is fatal, so that CI,
// which runs as root, never silently loses these tests. The addresses exist only inside the namespace
// and must be private, so that no test can reach or impersonate a real host.
func New(tb testing.TB, prefixes ...string) *Namespace {
	tb.Helper()
	if why := Requirements(); why != "" {
		tb.Skip("netns: " + why)
	}
	var parsed []netip.Prefix
	for _, s := range prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			tb.Fatalf("netns: address %q: %v", s, err)
		}
		if !p.Addr().IsPrivate() {
			tb.Fatalf("netns: address %s is not private (10/8, 172.16/12, 192.168/16, fc00::/7)", p)
		}
		parsed = append(parsed, p)
	}

	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	ns := &Namespace{Name: "meshentry-" + hex.EncodeToString(suffix[:]), tb: tb, fd: -1}
	run(tb, "ip", "netns", "add", ns.Name)
	tb.Cleanup(ns.remove)

	fd, err := unix.Open(filepath.Join("/run/netns", ns.Name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("netns: open %s: %v", ns.Name, err)
	}
	ns.fd = fd

	ns.IP("link", "set", "lo", "up")
	if len(parsed) == 0 {
		return ns
	}
	dev := ns.addInterface()
	for _, p := range parsed {
		args := []string{"addr", "add", p.String(), "dev", dev}
		if p.Addr().Is6() {
			// Without nodad the address stays tentative for a second or two and binding it fails.
			args = append(args, "nodad")
		}
		ns.IP(args...)
		ns.addrs = append(ns.addrs, p.Addr())
	}
	return ns
}

// addInterface creates the interface that holds the test addresses and returns its name: a dummy
// interface, or where the kernel has no dummy driver, a veth pair whose both ends stay in the namespace.
func (ns *Namespace) addInterface() string {
	const dev = "test0"
	if out, err := exec.Command("ip", "-n", ns.Name, "link", "add", dev, "type", "dummy").CombinedOutput(); err != nil {
		ns.tb.Logf("netns: no dummy interface (%v: %s); using a veth pair inside the namespace", err, strings.TrimSpace(string(out)))
		ns.IP("link", "add", dev, "type", "veth", "peer", "name", "test1")
		ns.IP("link", "set", "test1", "up")
	}
	ns.IP("link", "set", dev, "up")
	return dev
}

// remove closes the namespace handle and deletes the namespace; sockets still open in it keep it alive
// in the kernel until they close, but it is gone from /run/netns.
func (ns *Namespace) remove() {
	if ns.fd >= 0 {
		unix.Close(ns.fd)
		ns.fd = -1
	}
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		ns.tb.Errorf("netns: delete %s: %v: %s", ns.Name, err, out)
	}
}

// Addrs returns the addresses assigned inside the namespace.
func (ns *Namespace) Addrs() []netip.Addr { return slices.Clone(ns.addrs) }

// Exec runs a command inside the namespace (`ip netns exec NAME ...`), fails the test if it fails, and
// returns its combined output.
func (ns *Namespace) Exec(args ...string) string {
	ns.tb.Helper()
	return run(ns.tb, "ip", append([]string{"netns", "exec", ns.Name}, args...)...)
}

// IP runs `ip -n NAME args...` and fails the test if it fails.
func (ns *Namespace) IP(args ...string) string {
	ns.tb.Helper()
	return run(ns.tb, "ip", append([]string{"-n", ns.Name}, args...)...)
}

// IPTables runs iptables with args inside the namespace and fails the test if it fails.
func (ns *Namespace) IPTables(args ...string) string {
	ns.tb.Helper()
	return ns.Exec(append([]string{"iptables", "-w"}, args...)...)
}

// IP6Tables runs ip6tables with args inside the namespace and fails the test if it fails.
func (ns *Namespace) IP6Tables(args ...string) string {
	ns.tb.Helper()
	return ns.Exec(append([]string{"ip6tables", "-w"}, args...)...)
}

// MustListen is Listen on TCP that fails the test when the listener cannot be made.
func (ns *Namespace) MustListen(addr string) net.Listener {
	ns.tb.Helper()
	ln, err := ns.Listen("tcp", addr)
	if err != nil {
		ns.tb.Fatal(err)
	}
	return ln
}

// Listen creates a listener inside the namespace; addr must be an IP literal with a port, and the
// listener is closed when the test ends.
func (ns *Namespace) Listen(network, addr string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netns: listen address %q must be an IP literal and port: %w", addr, err)
	}
	if !ap.Addr().IsUnspecified() && !ns.reachable(ap.Addr()) {
		return nil, fmt.Errorf("netns: %s is neither loopback nor assigned in namespace %s", ap.Addr(), ns.Name)
	}
	var ln net.Listener
	err = ns.Do(func() error {
		var lerr error
		ln, lerr = net.Listen(network, addr)
		return lerr
	})
	if err != nil {
		return nil, err
	}
	ns.tb.Cleanup(func() { ln.Close() })
	return ln, nil
}

// Dial connects from inside the namespace. addr must be an IP literal, so that no resolver runs, and
// the address must be loopback or assigned in this namespace: Dial refuses anything else before a
// socket exists, which keeps tests from sending traffic anywhere outside.
func (ns *Namespace) Dial(network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netns: dial address %q must be an IP literal and port: %w", addr, err)
	}
	if !ns.reachable(ap.Addr()) {
		return nil, fmt.Errorf("netns: refusing to dial %s: neither loopback nor assigned in namespace %s", ap, ns.Name)
	}
	var c net.Conn
	err = ns.Do(func() error {
		var derr error
		c, derr = net.Dial(network, addr)
		return derr
	})
	return c, err
}

// reachable reports whether a is loopback or one of the namespace's own addresses.
func (ns *Namespace) reachable(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || slices.Contains(ns.addrs, a)
}

// Do runs fn on an OS thread switched into the namespace, so that sockets fn creates belong to it and
// keep belonging to it afterwards; fn must not start goroutines that create sockets, since those would
// run on other threads.
func (ns *Namespace) Do(fn func() error) error {
	// setns(2) switches only the calling thread, so the goroutine must stay on it until it is back.
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: open current namespace: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter %s: %w", ns.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime then discards it when this goroutine ends, instead of
		// handing a thread stuck in the wrong namespace to other goroutines.
		return fmt.Errorf("netns: return from %s: %w", ns.Name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// run runs a command, fails the test if it fails, and returns its combined output.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("netns: %s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
