package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// fuzzConfig holds examples 01, 03 and 05 of the reference, a STATIC entry, a DNS entry with named
// endpoints (example 07) and NONE entries with a VIP and a CIDR; *.self.test leads to the admin
// address. Only names under NONE entries resolve to 127.0.0.1, so a dial there for any other
// input came from an address a client smuggled in.
const fuzzConfig = `
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external-svc-https}
spec:
  hosts: [api.dropboxapi.com, www.googleapis.com, api.facebook.com]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external-svc-redirect}
spec:
  hosts: [wikipedia.org, "*.wikipedia.org"]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external-svc-wildcard-example}
spec:
  hosts: ["*.bar.com"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static}
spec:
  hosts: [static.example.com]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.5, ports: {http: 18080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-svc-dns}
spec:
  hosts: [foo.bar.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints:
  - {address: us.foo.bar.com, ports: {http: 8080}}
  - {address: uk.foo.bar.com, ports: {http: 9080}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vip}
spec:
  hosts: [vip.internal]
  addresses: [10.2.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: range}
spec:
  hosts: [range.internal]
  addresses: [10.3.0.0/16]
  ports: [{number: 5432, name: pg, protocol: TCP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: self}
spec:
  hosts: ["*.self.test"]
  ports: [{number: 15000, name: http, protocol: HTTP}]
  resolution: NONE
`

// fuzzNames are the test DNS server's answers. A dial to a name's answer is legitimate only when
// the input asked for that name (need), so a decoy that resolves but is not declared, or an answer
// reached through another name, shows up.
var fuzzNames = []struct{ name, addr, need string }{
	{name: "api.dropboxapi.com", addr: "127.0.0.11", need: "api.dropboxapi.com"},
	{name: "wikipedia.org", addr: "127.0.0.12", need: "wikipedia.org"},
	{name: "en.wikipedia.org", addr: "127.0.0.13", need: "en.wikipedia.org"},
	{name: "www.bar.com", addr: "127.0.0.14", need: "www.bar.com"},
	{name: "us.foo.bar.com", addr: "127.0.0.15", need: "foo.bar.com"},
	{name: "uk.foo.bar.com", addr: "127.0.0.16", need: "foo.bar.com"},
	{name: "evil.example.org", addr: "127.0.0.66", need: "\x00never"},
	{name: "loop.bar.com", addr: "127.0.0.1", need: "loop.bar.com"},
	{name: "a.self.test", addr: "127.0.0.1", need: "a.self.test"},
}

// fuzzRig is one proxy for the whole fuzz run; Config.Dial records every dial that passed the
// guard and refuses it, so no input ever moves a byte to an upstream.
type fuzzRig struct {
	h     *harness
	admin netip.AddrPort
	mu    sync.Mutex
	dials []string
}

func (r *fuzzRig) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	r.dials = append(r.dials, network+" "+addr)
	r.mu.Unlock()
	return nil, errors.New("fuzz: dial recorded, not made")
}

func (r *fuzzRig) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.dials
	r.dials = nil
	return d
}

// allowed reports whether a dial to addr is one the registry declares for input, for a path whose
// application-dialled address (capture) is orig.
func (r *fuzzRig) allowed(dial, input string, orig netip.AddrPort) bool {
	network, addr, _ := strings.Cut(dial, " ")
	ap, err := netip.ParseAddrPort(addr)
	if network != "tcp" || err != nil {
		return false
	}
	if r.h.p.sec.isSelf(ap) || ap == r.admin || ap.Addr().IsLoopback() && ap.Port() == uint16(r.h.port()) {
		return false
	}
	if orig.IsValid() && ap == orig {
		return true
	}
	switch {
	case ap == netip.MustParseAddrPort("127.0.0.5:18080"):
		return true
	case ap.Addr() == netip.MustParseAddr("10.2.0.1") && ap.Port() == 80,
		netip.MustParsePrefix("10.3.0.0/16").Contains(ap.Addr()) && ap.Port() == 5432:
		return true
	}
	lower := strings.ToLower(input)
	for _, n := range fuzzNames {
		if ap.Addr() == netip.MustParseAddr(n.addr) && strings.Contains(lower, n.need) {
			return true
		}
	}
	return false
}

func (h *harness) port() int {
	_, p, _ := net.SplitHostPort(h.addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// FuzzDestinations sends each input as an absolute-form authority, an origin-form Host, a CONNECT
// target and a captured TLS connection's SNI, and checks that every dial the proxy makes is one the
// registry declares for what was asked, and never one of the proxy's own addresses.
func FuzzDestinations(f *testing.F) {
	for _, s := range []string{
		"www.bar.com", "www.bar.com:80", "WWW.BAR.COM.", "www.bar.com.:80", "[::ffff:127.0.0.1%.bar.com]",
		"[::ffff:127.0.0.1%.bar.com]:80", "[::ffff:127.0.0.1%25.bar.com]:80", "::ffff:127.0.0.1%.bar.com",
		"[::ffff:127.0.0.1%.wikipedia.org]:443", "[::1%.wikipedia.org]:443", "en.wikipedia.org:443",
		"wikipedia.org", "api.dropboxapi.com:443", "API.DropboxAPI.com.:443", "static.example.com:8080",
		"foo.bar.com", "foo.bar.com:80", "user@www.bar.com", "user:pw@127.0.0.1:80", "127.0.0.1", "127.0.0.1:80",
		"2130706433", "2130706433:80", "0177.0.0.1:80", "0x7f.0.0.1", "[::1]:80", "[::ffff:127.0.0.1]:80",
		"[::ffff:10.2.0.1]:80", "10.2.0.1", "10.2.0.1:80", "10.3.4.5:5432", "[::ffff:10.3.4.5%x]:5432",
		"169.254.169.254:80", "evil.example.org:80", "evil.example.org.bar.com", "loop.bar.com:80",
		"*.bar.com", "bar.com", ".bar.com", "www.bar.com\x00.evil", "www.bar.com%00", "[www.bar.com]:80",
		"www.bar.com:0", "www.bar.com:99999", "[fe80::1%25eth0]:80", "127.0.0.1:15000", "a.self.test:15000",
	} {
		f.Add(s)
	}
	rig := newFuzzRig(f)
	f.Fuzz(func(t *testing.T, input string) {
		if strings.ContainsAny(input, "\r\n") || len(input) > 512 {
			return
		}
		requests := []string{
			"GET http://" + input + "/ HTTP/1.1\r\nHost: " + input + "\r\nConnection: close\r\n\r\n",
			"GET / HTTP/1.1\r\nHost: " + input + "\r\nConnection: close\r\n\r\n",
			"CONNECT " + input + " HTTP/1.1\r\nHost: " + input + "\r\n\r\n",
		}
		for _, req := range requests {
			fuzzExchange(t, rig.h.addr, req)
			for _, d := range rig.take() {
				if !rig.allowed(d, input, netip.AddrPort{}) {
					t.Fatalf("request %q made the proxy dial %s, which the registry does not declare for it", req, d)
				}
			}
		}
		orig := netip.MustParseAddrPort("127.0.0.99:443")
		if c, _, _, err := rig.h.p.dialCaptured(context.Background(), rig.h.p.table.Load(), orig, input, true); err == nil {
			c.Close()
		}
		for _, d := range rig.take() {
			if !rig.allowed(d, input, orig) {
				t.Fatalf("SNI %q made the proxy dial %s, which the registry does not declare for it", input, d)
			}
		}
	})
}

func newFuzzRig(f *testing.F) *fuzzRig {
	dns := dnstest.Start(f)
	for _, n := range fuzzNames {
		dns.Set(n.name, 3600, n.addr)
	}
	rig := &fuzzRig{admin: netip.MustParseAddrPort("127.0.0.1:15000")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	rig.h = startProxyOn(f, ln, fuzzConfig, Config{Dial: rig.dial, SelfAddrs: []netip.AddrPort{rig.admin}, MaxAttempts: 2}, dns.Addr)
	return rig
}

// fuzzExchange writes one request and reads until the proxy closes or a second passes.
func fuzzExchange(t *testing.T, addr, req string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return
	}
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
