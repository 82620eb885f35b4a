package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// The namespace's own resolver answers the two hosts with their "real" addresses, on the subnet
// but assigned to nobody, so that only capture can take a connection to them anywhere.
const (
	resolverAddr = "10.213.0.53"
	realAddrA    = "10.213.0.61"
	realAddrB    = "10.213.0.62"
)

// twoAddresslessEntries is the clash: two TCP ServiceEntries on one port without addresses,
// each with its own STATIC backend.
const twoAddresslessEntries = `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: a-db, namespace: default}
spec:
  hosts: [a.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %s}}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: b-db, namespace: default}
spec:
  hosts: [b.db.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %s}}]
`

// dbNamespace builds the namespace: the two backends on its loopback (each answering its name), its
// resolver at resolverAddr:53 (via /etc/netns/NAME/resolv.conf, which `ip netns exec` mounts), a
// route for the DNS proxy's virtual addresses, and the config for the proxy.
func dbNamespace(t *testing.T) (ns *netns.Namespace, config string) {
	t.Helper()
	ns = netns.New(t, "10.213.0.10/24", resolverAddr+"/24")
	// The virtual addresses must be routable for connect(2) to reach the nat OUTPUT hook at all; the
	// route leads into the namespace's dummy interface, nowhere else.
	ns.IP("route", "add", "240.240.0.0/16", "dev", "test0")
	var ports []string
	for _, name := range []string{"backend-a", "backend-b"} {
		ln := ns.MustListen("127.0.0.1:0")
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, name)
				c.Close()
			}
		}()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ports = append(ports, port)
	}
	var resolver *dnstest.Server
	if err := ns.Do(func() error {
		pc, err := net.ListenPacket("udp", resolverAddr+":53")
		if err != nil {
			return err
		}
		resolver = dnstest.StartOn(t, pc)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resolver.Set("a.db.test", 5, realAddrA)
	resolver.Set("b.db.test", 5, realAddrB)
	dir := filepath.Join("/etc/netns", ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver "+resolverAddr+"\noptions timeout:2 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return ns, fmt.Sprintf(twoAddresslessEntries, ports[0], ports[1])
}

// connectByName is the application: a shell in the namespace that resolves host through the
// namespace's resolver (glibc's getaddrinfo, as bash's /dev/tcp uses) and reads the line the far
// end sends.
func connectByName(t *testing.T, ns *netns.Namespace, host string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "timeout", "10", "bash", "-c",
		fmt.Sprintf("exec 3<>/dev/tcp/%s/9000 && head -n 1 <&3", host)).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("connect failed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out))
}

// resolveByName is the address the namespace's resolver gives the application for host, as glibc
// resolves it.
func resolveByName(t *testing.T, ns *netns.Namespace, host string) netip.Addr {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "getent", "ahostsv4", host).CombinedOutput()
	if err != nil {
		t.Fatalf("getent ahostsv4 %s: %v: %s", host, err, out)
	}
	a, err := netip.ParseAddr(strings.Fields(string(out))[0])
	if err != nil {
		t.Fatalf("getent ahostsv4 %s: %v: %s", host, err, out)
	}
	return a
}

// backendsByName connects to each host three times, alternating, and returns what answered.
func backendsByName(t *testing.T, ns *netns.Namespace) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for range 3 {
		for _, host := range []string{"a.db.test", "b.db.test"} {
			got[host] = append(got[host], connectByName(t, ns, host))
		}
	}
	return got
}

// TestCaptureWithoutDNSProxyClashes is the issue's first Must-show, its first half: after `meshentry
// capture setup` (no DNS capture, no DNS proxy), the application resolves both hosts to their own
// addresses, but the proxy sees only port 9000 and sends both to one backend.
func TestCaptureWithoutDNSProxyClashes(t *testing.T) {
	t.Parallel()
	ns, config := dbNamespace(t)
	bin := binary(t)
	before := savedRules(ns)
	ns.Exec(bin, "capture", "setup", "--capture-port", "15006", "--proxy-uid", proxyUID, "--dns-port", "0")
	launchCaptured(t, ns, writeConfig(t, config))
	for host, want := range map[string]string{"a.db.test": realAddrA, "b.db.test": realAddrB} {
		if a := resolveByName(t, ns, host); a.String() != want {
			t.Errorf("without the DNS proxy %s resolved to %s, want the resolver's %s", host, a, want)
		}
	}
	got := backendsByName(t, ns)
	t.Logf("without the DNS proxy: %v", got)
	for host, answers := range got {
		for _, a := range answers {
			if !strings.HasPrefix(a, "backend-") {
				t.Fatalf("%s: %q, want a backend's answer", host, a)
			}
		}
	}
	if a, b := got["a.db.test"][0], got["b.db.test"][0]; a != b {
		t.Errorf("a.db.test reached %s and b.db.test %s: no clash, so this test no longer shows what the DNS proxy fixes", a, b)
	}
	ns.Exec(bin, "capture", "teardown")
	if after := savedRules(ns); after != before {
		t.Errorf("rules after teardown:\n%s\nbefore setup:\n%s", after, before)
	}
}

// TestCaptureWithDNSProxyTellsHostsApart is the first Must-show, its second half: after
// `meshentry capture setup` (DNS captured to 15053), the application's queries to its own resolver
// reach the DNS proxy, which answers each host with its own virtual address, and each connection
// reaches its own backend every time.
func TestCaptureWithDNSProxyTellsHostsApart(t *testing.T) {
	t.Parallel()
	ns, config := dbNamespace(t)
	bin := binary(t)
	before := savedRules(ns)
	ns.Exec(bin, "capture", "setup", "--capture-port", "15006", "--proxy-uid", proxyUID, "--dns-port", "15053")
	launchCaptured(t, ns, writeConfig(t, config), "--dns-listen", "127.0.0.1:15053", "--dns-server", resolverAddr+":53")
	t.Logf("meshentry capture show:\n%s", ns.Exec(bin, "capture", "show"))
	vips := netip.MustParsePrefix("240.240.0.0/16")
	a, b := resolveByName(t, ns, "a.db.test"), resolveByName(t, ns, "b.db.test")
	t.Logf("the DNS proxy answered a.db.test %s, b.db.test %s", a, b)
	if !vips.Contains(a) || !vips.Contains(b) || a == b {
		t.Errorf("a.db.test resolved to %s and b.db.test to %s, want two different addresses in %s", a, b, vips)
	}
	got := backendsByName(t, ns)
	t.Logf("with the DNS proxy: %v", got)
	for host, want := range map[string]string{"a.db.test": "backend-a", "b.db.test": "backend-b"} {
		for i, answer := range got[host] {
			if answer != want {
				t.Errorf("connection %d to %s reached %q, want %s", i+1, host, answer, want)
			}
		}
	}
	ns.Exec(bin, "capture", "teardown")
	after := savedRules(ns)
	t.Logf("iptables-save and ip6tables-save, canonical, before setup %q and after teardown %q", before, after)
	if after != before {
		t.Errorf("rules after teardown:\n%s\nbefore setup:\n%s", after, before)
	}
}
