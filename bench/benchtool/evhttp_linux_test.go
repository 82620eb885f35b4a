package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startTestEvHTTP starts the proxy to upstream on a port of the kernel's. Its loops outlive
// the test: the prototype has no shutdown.
func startTestEvHTTP(t *testing.T, upstream string) string {
	t.Helper()
	ua, err := netip.ParseAddrPort(upstream)
	if err != nil {
		t.Fatal(err)
	}
	la, _, err := startEvHTTP(netip.MustParseAddrPort("127.0.0.1:0"), ua)
	if err != nil {
		t.Fatal(err)
	}
	return la.String()
}

func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, req string) (*http.Response, []byte) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestEvHTTP(t *testing.T) {
	var seen atomic.Pointer[http.Request]
	up := httptest.NewServer(evhttpTestUpstream(&seen))
	defer up.Close()
	upAddr := strings.TrimPrefix(up.URL, "http://")
	addr := startTestEvHTTP(t, upAddr)
	t.Run("forwards an absolute-form request in origin-form, with Via and an x-request-id, without hop-by-hop fields", func(t *testing.T) {
		testEvHTTPRewrite(t, addr, upAddr, &seen)
	})
	t.Run("relays bodies larger than its buffers both ways, and keeps the connection", func(t *testing.T) {
		testEvHTTPLargeBodies(t, addr)
	})
	t.Run("survives a client that closes in the middle of a response", func(t *testing.T) {
		testEvHTTPClientAbort(t, addr)
	})
	t.Run("answers a chunked request 501 and closes", func(t *testing.T) {
		testEvHTTPChunkedRequest(t, addr)
	})
}

// evhttpTestUpstream records each request in seen and answers /big?n=N with N bytes, /echo
// with the request's body, and anything else with "hello", each with a Keep-Alive field for
// the proxy to drop.
func evhttpTestUpstream(seen *atomic.Pointer[http.Request]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r)
		w.Header().Set("Keep-Alive", "timeout=5")
		switch r.URL.Path {
		case "/big":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			chunk := []byte(strings.Repeat("y", 64<<10))
			for left := n; left > 0; left -= len(chunk) {
				if left < len(chunk) {
					chunk = chunk[:left]
				}
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b)
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	})
}

func testEvHTTPRewrite(t *testing.T, addr, upAddr string, seen *atomic.Pointer[http.Request]) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	resp, body := roundTrip(t, c, br, "GET http://"+upAddr+"/a?b=c HTTP/1.1\r\nHost: other\r\nProxy-Connection: keep-alive\r\nConnection: X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("the response's Keep-Alive field was forwarded")
	}
	r := seen.Load()
	switch {
	case r.RequestURI != "/a?b=c":
		t.Errorf("target %q, want origin-form", r.RequestURI)
	case r.Host != upAddr:
		t.Errorf("Host %q, want the target's authority", r.Host)
	case r.Header.Get("Proxy-Connection") != "" || r.Header.Get("X-Secret") != "" || r.Header.Get("Connection") != "":
		t.Errorf("hop-by-hop fields forwarded: %v", r.Header)
	case r.Header.Get("X-Kept") != "2" || !strings.HasPrefix(r.Header.Get("Via"), "1.1 evhttp-") || len(r.Header.Get("X-Request-Id")) != 36:
		t.Errorf("fields: %v", r.Header)
	}
}

func testEvHTTPLargeBodies(t *testing.T, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	const n = 3<<20 + 17
	resp, body := roundTrip(t, c, br, fmt.Sprintf("GET /big?n=%d HTTP/1.1\r\nHost: x\r\n\r\n", n))
	if resp.StatusCode != 200 || len(body) != n {
		t.Fatalf("got %d, %d bytes, want %d", resp.StatusCode, len(body), n)
	}
	payload := strings.Repeat("z", 200<<10)
	resp, body = roundTrip(t, c, br, fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(payload), payload))
	if resp.StatusCode != 200 || string(body) != payload {
		t.Fatalf("echo: got %d, %d bytes", resp.StatusCode, len(body))
	}
	resp, body = roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if string(body) != "hello" {
		t.Fatalf("after the bodies: %d %q", resp.StatusCode, body)
	}
}

func testEvHTTPClientAbort(t *testing.T, addr string) {
	for range 20 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /big?n=33554432 HTTP/1.1\r\nHost: x\r\n\r\n")
		io.ReadFull(c, make([]byte, 100<<10))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, body := roundTrip(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
}

func testEvHTTPChunkedRequest(t *testing.T, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, _ := roundTrip(t, c, bufio.NewReader(c), "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if resp.StatusCode != 501 || !resp.Close {
		t.Fatalf("got %d, close %v", resp.StatusCode, resp.Close)
	}
}

// TestEvHTTPIdleClose: an upstream that closes a pooled connection is seen to close it by the
// event, and the next request goes on a new connection, not on the closed one.
func TestEvHTTPIdleClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted, requests atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					requests.Add(1)
					io.Copy(io.Discard, r.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					if r.URL.Path == "/then-close" {
						time.Sleep(50 * time.Millisecond)
						return // closes an idle keep-alive connection, as an idle timeout does
					}
				}
			}()
		}
	}()
	addr := startTestEvHTTP(t, ln.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if resp, body := roundTrip(t, c, br, "GET /then-close HTTP/1.1\r\nHost: x\r\n\r\n"); string(body) != "ok" {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	time.Sleep(200 * time.Millisecond)
	for i := range 3 {
		if resp, body := roundTrip(t, c, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d after the close: %d %q", i+2, resp.StatusCode, body)
		}
	}
	if a, r := accepted.Load(), requests.Load(); a != 2 || r != 4 {
		t.Fatalf("the upstream accepted %d connections and read %d requests, want 2 and 4", a, r)
	}
}
