package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// harness is a proxy serving its forward listener on loopback.
type harness struct {
	p    *Proxy
	addr string // forward proxy "127.0.0.1:port"
}

// startProxy compiles yamlDocs (every document must be valid) and serves it on 127.0.0.1:0.
// dnsAddr, when set, is the DNS server for DNS endpoints and NONE hosts.
func startProxy(t testing.TB, yamlDocs string, cfg Config, dnsAddr string) *harness {
	t.Helper()
	snap := compileSnapshot(t, yamlDocs)
	if cfg.Resolver == nil {
		server := dnsAddr
		if server == "" {
			server = "127.0.0.1:1" // nothing answers: tests that need DNS pass a server
		}
		r, err := resolve.New(resolve.Config{Server: server, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		cfg.Resolver = r
	}
	p := New(cfg, snap)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.ServeForward(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return &harness{p: p, addr: ln.Addr().String()}
}

// compileSnapshot compiles yamlDocs, every one of which must be valid, into a snapshot.
func compileSnapshot(t testing.TB, yamlDocs string) *registry.Snapshot {
	t.Helper()
	loaded := config.Result{}
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(yamlDocs), "default", &order)
	loaded.Documents, loaded.Diagnostics = docs, diags
	res := compile.Documents(loaded, 1)
	if n := res.Errors(); n > 0 {
		t.Fatalf("config has %d errors: %v", n, res.Diagnostics)
	}
	return res.Snapshot
}

// client is an HTTP client that uses the harness as its HTTP_PROXY and HTTPS_PROXY.
func (h *harness) client(tlsCfg *tls.Config) *http.Client {
	u := &url.URL{Scheme: "http", Host: h.addr}
	return &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(u), TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 16},
		Timeout:   10 * time.Second,
	}
}

// get fetches rawURL through the proxy and returns status, body and the response.
func get(t *testing.T, c *http.Client, rawURL string) (int, string, *http.Response) {
	t.Helper()
	resp, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", rawURL, err)
	}
	return resp.StatusCode, string(b), resp
}

// connect opens a CONNECT tunnel through the proxy and returns the tunnel, or the refusal status;
// a byte after the 200 fails the test, since the client has sent nothing for it to answer.
func (h *harness) connect(t *testing.T, authority string) (net.Conn, int) {
	t.Helper()
	c, status, buffered := h.connectRaw(t, authority)
	if len(buffered) > 0 {
		t.Fatalf("CONNECT %s: %d unexpected bytes after the 200", authority, len(buffered))
	}
	return c, status
}

// connectServerFirst is connect for a server that speaks first: what it sent may arrive with the
// 200, and is read from the returned tunnel first.
func (h *harness) connectServerFirst(t *testing.T, authority string) (net.Conn, int) {
	t.Helper()
	c, status, buffered := h.connectRaw(t, authority)
	if len(buffered) > 0 {
		c = newPrefixed(c, buffered)
	}
	return c, status
}

// connectRaw opens a CONNECT tunnel and returns it with the bytes read past the 200.
func (h *harness) connectRaw(t *testing.T, authority string) (net.Conn, int, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", authority, authority)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		c.Close()
		t.Fatalf("CONNECT %s: %v", authority, err)
	}
	if resp.StatusCode != 200 {
		c.Close()
		return nil, resp.StatusCode, nil
	}
	buffered, _ := br.Peek(br.Buffered())
	return c, 200, buffered
}

// httpsOver speaks HTTPS over an established tunnel and returns the echo body.
func httpsOver(t *testing.T, tunnel net.Conn, ca *backend.CA, sni string) string {
	t.Helper()
	tc := tls.Client(tunnel, backend.TLSClient(ca, sni))
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(tc, "GET /via-tunnel HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", sni)
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("HTTPS to %s over the tunnel: %v", sni, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// serveCapture serves the harness's capture listener on 127.0.0.1:0, taking every connection to
// have been redirected from orig (SO_ORIGINAL_DST needs iptables; the sockets stay real), and
// returns its address.
func (h *harness) serveCapture(t *testing.T, orig string) string {
	t.Helper()
	dst := netip.MustParseAddrPort(orig)
	h.p.origDst = func(*net.TCPConn) (netip.AddrPort, error) { return dst, nil }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.p.ServeCapture(ln)
	return ln.Addr().String()
}

// echoServer echoes every connection back until the client closes it, through a buffer rather than
// splice, so that it holds no pipe of its own while idle.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{c}, make([]byte, 32<<10))
			}()
		}
	}()
	return ln
}
