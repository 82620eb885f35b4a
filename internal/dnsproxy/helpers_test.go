package dnsproxy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/vip"
)

// allocFunc adapts a vip.Allocator to the build, as `run` does.
func allocFunc(a *vip.Allocator) registry.AutoAddressFunc {
	return func(hosts []string, avoid []netip.Prefix) map[string][]netip.Addr {
		out := map[string][]netip.Addr{}
		for h, ad := range a.Allocate(hosts, avoid...) {
			out[h] = []netip.Addr{ad.V4, ad.V6}
		}
		return out
	}
}

// compileYAML builds a snapshot from config text with addresses from alloc (nil: none).
func compileYAML(t testing.TB, yaml string, alloc *vip.Allocator) *registry.Snapshot {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var opts []compile.Option
	if alloc != nil {
		opts = append(opts, compile.WithAutoAddresses(allocFunc(alloc)))
	}
	res, err := compile.Paths([]string{path}, config.Options{}, 1, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors() > 0 {
		t.Fatalf("config has errors: %v", res.Diagnostics)
	}
	return res.Snapshot
}

// serve starts s on 127.0.0.1:0 until the test ends and returns its address.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pc, ln, 0) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	// The sockets are bound: queries sent before Serve reads them wait in the kernel.
	return ln.Addr().String()
}

// ask sends one question over network and returns the answer.
func ask(t testing.TB, network, addr, name string, qtype uint16, edns uint16) *dns.Msg {
	t.Helper()
	c := dns.Client{Net: network, Timeout: 5 * time.Second, UDPSize: 65535}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns > 0 {
		m.SetEdns0(edns, false)
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("ask %s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

func ips(r *dns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.A:
			out = append(out, rr.A.String())
		case *dns.AAAA:
			out = append(out, rr.AAAA.String())
		case *dns.CNAME:
			out = append(out, "CNAME "+rr.Target)
		}
	}
	return out
}

// upstream is a real DNS server on UDP and TCP whose handler the test writes.
type upstream struct {
	addr string
	mu   sync.Mutex
	n    map[string]int // questions seen per network
}

func startUpstream(t testing.TB, h func(w dns.ResponseWriter, r *dns.Msg)) *upstream {
	t.Helper()
	u := &upstream{n: map[string]int{}}
	// Listen tries again when another socket already holds the TCP half of the UDP port.
	pc, ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = pc.LocalAddr().String()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.mu.Lock()
		u.n[w.LocalAddr().Network()]++
		u.mu.Unlock()
		h(w, r)
	})
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return u
}

func (u *upstream) count(network string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n[network]
}

// manyAddresses is an entry whose A answer is about 2,000 bytes: 125 records of 16 bytes.
func manyAddresses(n int) string {
	var b strings.Builder
	b.WriteString("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: big}\nspec:\n  hosts: [big.test]\n  addresses:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - 10.1.%d.%d\n", i/250, i%250+1)
	}
	b.WriteString("  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  resolution: STATIC\n  endpoints: [{address: 127.0.0.1}]\n")
	return b.String()
}
