package httpfwd

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// payload returns n deterministic pseudo-random bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// chunk encodes b in chunks of the given size, with an extension on the first one.
func chunk(b []byte, size int) string {
	var sb strings.Builder
	for i := 0; i < len(b); i += size {
		end := min(i+size, len(b))
		fmt.Fprintf(&sb, "%x", end-i)
		if i == 0 {
			sb.WriteString(";name=value")
		}
		sb.WriteString("\r\n")
		sb.Write(b[i:end])
		sb.WriteString("\r\n")
	}
	sb.WriteString("0\r\n\r\n")
	return sb.String()
}

// summingBackend answers each request with the length and digest of the body it received and
// how that body was framed.
func summingBackend(t *testing.T) *backend {
	return startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %s %v", len(b), digest(b), r.TransferEncoding)
	})
}

func TestRequestBodies(t *testing.T) {
	t.Parallel()
	small := payload(1000)
	large := payload(8 << 20)
	tests := []struct {
		name    string
		body    []byte
		chunked bool
	}{
		{name: "forwards a small Content-Length body", body: small},
		{name: "streams an 8 MiB Content-Length body", body: large},
		{name: "forwards a small chunked body with extensions", body: small, chunked: true},
		{name: "streams an 8 MiB chunked body in uneven chunks", body: large, chunked: true},
	}
	be := summingBackend(t)
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			head := "POST /sum HTTP/1.1\r\nHost: sum.test\r\n"
			wantTE := "[]"
			// Built before dialling: on a loaded machine building 8 MiB under -race can take
			// longer than the proxy waits for a new connection's first byte.
			raw := head + "Content-Length: " + strconv.Itoa(len(tt.body)) + "\r\n\r\n" + string(tt.body)
			if tt.chunked {
				raw = head + "Transfer-Encoding: chunked\r\n\r\n" + chunk(tt.body, 100003)
			}
			c := dial(t, addr)
			// Written concurrently, as a large body does not fit in socket buffers.
			go io.WriteString(c.nc, raw)
			if tt.chunked {
				wantTE = "[chunked]"
			}
			resp := c.read("POST")
			want := fmt.Sprintf("%d %s %s", len(tt.body), digest(tt.body), wantTE)
			if resp.StatusCode != 200 || resp.body != want {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, resp.body, want)
			}
		})
	}
}

func TestResponseBodies(t *testing.T) {
	t.Parallel()
	large := payload(8 << 20)
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		body := large[:n]
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(body)
			return
		}
		for len(body) > 0 {
			k := min(len(body), 70001)
			w.Write(body[:k])
			w.(http.Flusher).Flush()
			body = body[k:]
		}
	})
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	tests := []struct {
		name    string
		query   string
		n       int
		chunked bool
	}{
		{name: "relays a small Content-Length response", n: 10},
		{name: "relays an 8 MiB Content-Length response", n: len(large)},
		{name: "relays an 8 MiB chunked response", n: len(large), chunked: true},
		{name: "relays an empty chunked response", n: 0, chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			q := "n=" + strconv.Itoa(tt.n)
			if tt.chunked {
				q += "&chunked=1"
			}
			resp := c.roundTrip("GET /gen?" + q + " HTTP/1.1\r\nHost: gen.test\r\n\r\n")
			if resp.StatusCode != 200 || digest([]byte(resp.body)) != digest(large[:tt.n]) {
				t.Fatalf("got %d with %d bytes, want 200 with %d", resp.StatusCode, len(resp.body), tt.n)
			}
			if chunked := len(resp.TransferEncoding) > 0; chunked != (tt.chunked && tt.n > 0) {
				t.Errorf("chunked = %v, want %v", chunked, tt.chunked)
			}
			// The connection must still be usable: the framing was followed exactly.
			if again := c.roundTrip("GET /gen?n=3 HTTP/1.1\r\nHost: gen.test\r\n\r\n"); again.body != string(large[:3]) {
				t.Errorf("second response body %q", again.body)
			}
		})
	}
	if n := be.conns.Load(); n > int64(len(tests)) {
		t.Errorf("backend accepted %d connections for %d clients", n, len(tests))
	}
}

func TestChunkedResponsePassesThroughVerbatim(t *testing.T) {
	t.Parallel()
	const body = "5;ext=\"x y\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		for {
			if _, err := readRawRequest(br); err != nil {
				return
			}
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"+body)
		}
	})
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	head, err := readRawHead(c.br)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(head, "Transfer-Encoding: chunked\r\n") || strings.Contains(head, "Trailer:") {
		t.Errorf("head %q: want Transfer-Encoding kept and Trailer dropped", head)
	}
	got := make([]byte, len(body))
	if _, err := io.ReadFull(c.br, got); err != nil || string(got) != body {
		t.Fatalf("body %q (%v), want %q", got, err, body)
	}
}

// readRawHead reads a head up to and including its empty line.
func readRawHead(br *bufio.Reader) (string, error) {
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

func TestResponseUntilClose(t *testing.T) {
	t.Parallel()
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nX-Mode: eof\r\n\r\nhello, until close")
		}
	})
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	c := dial(t, addr)
	resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.body != "hello, until close" || !resp.Close {
		t.Fatalf("got %q close=%v, want the body and Connection: close", resp.body, resp.Close)
	}
	if !c.closed() {
		t.Error("client connection left open after a response delimited by close")
	}
}

func TestBodilessResponses(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
		case "/304":
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(304)
		default:
			w.Header().Set("Content-Length", "1000")
			if r.Method != "HEAD" {
				w.Write(make([]byte, 1000))
			}
		}
	})
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	tests := []struct {
		name, method, path string
		status             int
	}{
		{name: "answers HEAD without a body but with its length", method: "HEAD", path: "/", status: 200},
		{name: "relays 204 without a body", method: "GET", path: "/204", status: 204},
		{name: "relays 304 without a body", method: "GET", path: "/304", status: 304},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			resp := c.roundTrip(tt.method + " " + tt.path + " HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp.StatusCode != tt.status || resp.body != "" {
				t.Fatalf("got %d %q, want %d and no body", resp.StatusCode, resp.body, tt.status)
			}
			if tt.method == "HEAD" && resp.ContentLength != 1000 {
				t.Errorf("HEAD Content-Length %d, want 1000", resp.ContentLength)
			}
			// A body wrongly read or relayed would corrupt this next exchange.
			if next := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); next.StatusCode != 200 || len(next.body) != 1000 {
				t.Errorf("next exchange: %d with %d bytes", next.StatusCode, len(next.body))
			}
		})
	}
}
