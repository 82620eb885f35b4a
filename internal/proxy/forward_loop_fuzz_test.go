package proxy

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/registry"
)

// forwardFuzzConfig declares a few services the fuzzed heads may name: two STATIC ones (one by
// a VIP), one whose endpoint is the proxy's own address, an HTTP port and a DNS service.
const forwardFuzzConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: istio-system}
spec:
  hosts: [static.test]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: 39500}}, {address: 127.0.0.2, ports: {tcp: 39500}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vip, namespace: istio-system}
spec:
  hosts: [vip.test]
  addresses: [10.9.9.9]
  ports: [{number: 9100, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.3, ports: {tcp: 39501}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: self, namespace: istio-system}
spec:
  hosts: [self.test]
  ports: [{number: 9200, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: 39599}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: istio-system}
spec:
  hosts: [web.test]
  ports: [{number: 9300, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.4, ports: {http: 39502}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: istio-system}
spec:
  hosts: [dns.test]
  ports: [{number: 9400, name: tcp, protocol: TCP}]
  resolution: DNS
  endpoints: [{address: 127.0.0.5, ports: {tcp: 39503}}]
`

// selfAddr is the proxy's own address in forwardFuzzConfig, self.test's endpoint.
var selfAddr = netip.MustParseAddrPort("127.0.0.1:39599")

// FuzzForwardLoopHead holds the forward loop to the registry: whatever the head, a Verdict
// that relays goes to an endpoint the registry gives for the head's authority, never to the
// proxy itself, past exactly the head, with pipeConnect's 200; every other Verdict is a
// handoff, a wait for more (never when final) or a close.
func FuzzForwardLoopHead(f *testing.F) {
	for _, seed := range []string{
		"CONNECT static.test:9000 HTTP/1.1\r\nHost: static.test\r\n\r\n",
		"CONNECT STATIC.TEST.:9000 HTTP/1.1\r\nHost: x\r\n\r\nafter",
		"CONNECT 10.9.9.9:9100 HTTP/1.0\r\n\r\n",
		"CONNECT 127.0.0.1:9000 HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT [::1]:9000 HTTP/1.1\r\nHost: a\r\n\r\n",
		"CONNECT self.test:9200 HTTP/1.1\r\nHost: self.test\r\n\r\n",
		"CONNECT web.test:9300 HTTP/1.1\r\nHost: web.test\r\n\r\n",
		"CONNECT dns.test:9400 HTTP/1.1\r\nHost: dns.test\r\n\r\n",
		"CONNECT other.test:9000 HTTP/1.1\r\nHost: other.test\r\nX-Request-Id: r\r\n\r\n",
		"CONNECT nowhere.test:1 HTTP/1.1\r\nHost: nowhere.test\r\n\r\n",
		"CONNECT static.test HTTP/1.1\r\nHost: static.test\r\n\r\n",
		"CONNECT static.test:9000 HTTP/1.1\r\nHost: static.test\r\nVia: 1.1 meshentry\r\n\r\n",
		"CONNECT static.test:9000 HTTP/1.1\r\nHost: static.test",
		"CONN",
		"GET http://static.test:9000/ HTTP/1.1\r\nHost: static.test\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	h := startProxy(f, forwardFuzzConfig, Config{Namespace: "istio-system", SelfAddrs: []netip.AddrPort{selfAddr}}, "")
	fl := h.p.newForwardLoop(1)
	fl.ready.Store(true)
	acc := evloop.Accepted{Remote: netip.MustParseAddrPort("127.0.0.1:40000"), Local: netip.MustParseAddrPort("127.0.0.1:3128")}
	snap := h.p.Snapshot()
	f.Fuzz(func(t *testing.T, head []byte, final bool) {
		v := fl.head(acc, head, final)
		tgt := v.Target
		switch {
		case v.More:
			if final || tgt.Addr.IsValid() || tgt.Handoff != nil {
				t.Fatalf("More %+v on a final head", v)
			}
			return
		case tgt.Handoff != nil || !tgt.Addr.IsValid() && len(v.Reject) == 0:
			return // the engine's, or closed at the cap
		case !tgt.Addr.IsValid():
			t.Fatalf("Verdict %+v rejects: the loop leaves refusals to the engine", v)
		}
		defer tgt.Done(evloop.Result{}) // the pipe began: the proxy waits for its end
		req, n, _ := h.p.forward.ConnectHead(head)
		if req == nil {
			t.Fatalf("relayed to %v a head the engine does not take as a CONNECT: %q", tgt.Addr, head)
		}
		if tgt.Consume != n || !bytes.Equal(tgt.Reply, connectEstablished) || tgt.Refuse == nil {
			t.Errorf("Consume %d of a %d-byte head, Reply %q", tgt.Consume, n, tgt.Reply)
		}
		port := uint32(req.Port)
		if port == 0 {
			port = 443
		}
		m := snap.Match(registry.Query{Namespace: "istio-system", Host: req.Host, Port: port, Protocol: registry.TrafficAny}, false)
		if m.Outcome != registry.Matched || tgt.Addr == selfAddr {
			t.Fatalf("%s:%d relayed to %v: matched %v", req.Host, port, tgt.Addr, m.Outcome)
		}
		var allowed []string
		for _, e := range m.Port.Endpoints {
			allowed = append(allowed, e.Dial())
		}
		if !slices.Contains(allowed, tgt.Addr.String()) {
			t.Fatalf("%s:%d relayed to %v, not one of the endpoints %v", req.Host, port, tgt.Addr, allowed)
		}
	})
}

// TestForwardLoopHeadDecides shows the forward loop's verdicts on the registry of
// FuzzForwardLoopHead: it relays only a complete CONNECT to a STATIC service it can reach
// exactly as handleConnect would, and hands every other connection to the engine.
func TestForwardLoopHeadDecides(t *testing.T) {
	h := startProxy(t, forwardFuzzConfig, Config{Namespace: "istio-system", SelfAddrs: []netip.AddrPort{selfAddr}}, "")
	fl := h.p.newForwardLoop(1)
	fl.ready.Store(true)
	acc := evloop.Accepted{Remote: netip.MustParseAddrPort("127.0.0.1:40000"), Local: netip.MustParseAddrPort("127.0.0.1:3128")}
	connect := func(authority string) string {
		return "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\n"
	}
	tests := []struct {
		name  string
		head  string
		final bool
		want  string // "more", "handoff", or the endpoints it may relay to
	}{
		{name: "relays a CONNECT to a STATIC host", head: connect("static.test:9000"), want: "127.0.0.1:39500 127.0.0.2:39500"},
		{name: "relays a host in another case, with its trailing dot", head: connect("Static.Test.:9000"), want: "127.0.0.1:39500 127.0.0.2:39500"},
		{name: "relays a CONNECT to a declared VIP", head: connect("10.9.9.9:9100"), want: "127.0.0.3:39501"},
		{name: "relays a CONNECT to an HTTP port, as handleConnect tunnels it", head: connect("web.test:9300"), want: "127.0.0.4:39502"},
		{name: "hands off a service whose only endpoint is the proxy", head: connect("self.test:9200"), want: "handoff"},
		{name: "hands off a DNS service", head: connect("dns.test:9400"), want: "handoff"},
		{name: "hands off an undeclared host", head: connect("nowhere.test:1"), want: "handoff"},
		{name: "relays a CONNECT that came through another proxy",
			head: "CONNECT static.test:9000 HTTP/1.1\r\nHost: static.test\r\nVia: 1.1 other-proxy\r\n\r\n",
			want: "127.0.0.1:39500 127.0.0.2:39500"},
		{name: "hands off an HTTP request at once", head: "GET http://static.test:9000/ HTTP/1.1\r\n", want: "handoff"},
		{name: "waits for the rest of a CONNECT head", head: "CONNECT static.test:9000 HTTP/1.1\r\n", want: "more"},
		{name: "hands off a CONNECT head that will not be complete", head: "CONNECT static.test:9000 HTTP/1.1\r\n", final: true, want: "handoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := fl.head(acc, []byte(tt.head), tt.final)
			got := "handoff"
			switch {
			case v.More:
				got = "more"
			case v.Target.Addr.IsValid():
				defer v.Target.Done(evloop.Result{})
				got = v.Target.Addr.String()
			case v.Target.Handoff == nil:
				got = "close"
			}
			if got != tt.want && !(len(got) > 0 && got[0] >= '0' && got[0] <= '9' && slices.Contains(strings.Fields(tt.want), got)) {
				t.Errorf("verdict %q, want %q", got, tt.want)
			}
		})
	}
}
