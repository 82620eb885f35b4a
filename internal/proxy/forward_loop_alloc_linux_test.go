package proxy

import (
	"bytes"
	"net"
	"runtime"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/norace"
)

// staticBackend answers every request on a connection with the same 128-byte response, with
// fixed buffers: it allocates nothing per request, so that a count of the process's
// allocations over many requests is the proxy's.
func staticBackend(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 128\r\n\r\n" + string(bytes.Repeat([]byte("x"), 128)))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 16<<10)
				have := 0
				for {
					n, err := c.Read(buf[have:])
					if err != nil {
						return
					}
					have += n
					for {
						end := bytes.Index(buf[:have], []byte("\r\n\r\n"))
						if end < 0 {
							break
						}
						copy(buf, buf[end+4:have])
						have -= end + 4
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln
}

// loopClient sends one keep-alive request at a time on c and reads its whole answer into a
// fixed buffer.
type loopClient struct {
	c    net.Conn
	req  []byte
	buf  []byte
	want int
}

func (lc *loopClient) do(t testing.TB) {
	if _, err := lc.c.Write(lc.req); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < lc.want; {
		n, err := lc.c.Read(lc.buf[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += n
	}
}

// newLoopClient starts a loop proxy with httpLoopConfig and more documents (extra) in front of
// a staticBackend, and connects a client to it.
func newLoopClient(t testing.TB, extra string) (*loopClient, *harness) {
	back := staticBackend(t)
	h, _ := startLoopProxy(t, httpLoopConfig(back.Addr().(*net.TCPAddr).Port, 1)+extra, Config{Namespace: "istio-system"})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lc := &loopClient{c: c, req: []byte("GET http://web.test/ HTTP/1.1\r\nHost: web.test\r\nUser-Agent: bench\r\n\r\n"), buf: make([]byte, 4096)}
	// The answer's length, learnt once: the engine's head plus the body.
	lc.c.Write(lc.req)
	n, err := lc.c.Read(lc.buf)
	if err != nil {
		t.Fatal(err)
	}
	lc.want = n
	return lc, h
}

// TestForwardLoopHTTPDoesNotAllocate counts the process's allocations over many keep-alive
// requests through the loop engine, the client and the upstream included (they allocate
// nothing per request): the loop's path allocates nothing per request either.
func TestForwardLoopHTTPDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		norace.Rerun(t) // the race detector allocates on its own
		return
	}
	tests := []struct{ name, extra string }{
		{name: "no VirtualService"},
		{name: "a VirtualService binding another host", extra: otherHostVirtualService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc, h := newLoopClient(t, tt.extra)
			for range 100 {
				lc.do(t) // the pools, the heap and the free lists grow to their size
			}
			served := h.p.ForwardLoopHTTPStats().Requests
			const n = 2000
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range n {
				lc.do(t)
			}
			runtime.ReadMemStats(&after)
			if per := float64(after.Mallocs-before.Mallocs) / n; per > 0.05 {
				t.Errorf("%.2f allocations per request, want none", per)
			}
			if got := h.p.ForwardLoopHTTPStats().Requests - served; got != n {
				t.Errorf("the loop served %d of the %d requests", got, n)
			}
		})
	}
}

// otherHostVirtualService binds a host the loop clients do not ask for.
const otherHostVirtualService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other, namespace: istio-system}
spec:
  hosts: [other.test]
  http: [{route: [{destination: {host: web.test}}]}]
`

// BenchmarkForwardLoopHTTP is one keep-alive client through the loop engine to an upstream
// that answers 128 bytes: the loop's cost per request over real sockets (-benchmem counts the
// process's allocations).
func BenchmarkForwardLoopHTTP(b *testing.B) {
	lc, _ := newLoopClient(b, "")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		lc.do(b)
	}
}
