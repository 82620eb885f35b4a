package httpfwd

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startH2CBackend runs handler on a server that speaks only cleartext HTTP/2.
func startH2CBackend(t *testing.T, handler http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{Server: httptest.NewUnstartedServer(handler)}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	b.Config.Protocols = &protocols
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func TestH2CUpstreams(t *testing.T) {
	t.Parallel()
	be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2", 400)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Uri", r.RequestURI)
		w.Header().Set("X-Seen-Te", r.Header.Get("Te"))
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		if r.URL.Query().Get("trailer") != "" {
			w.Header().Set("Trailer", "Grpc-Status")
			fmt.Fprintf(w, "%d %s", len(b), digest(b))
			w.Header().Set("Grpc-Status", "0")
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(fmt.Sprintf("%d %s", len(b), digest(b)))))
		fmt.Fprintf(w, "%d %s", len(b), digest(b))
	})
	pool := &Pool{}
	defer pool.Close()
	router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
		return Upstream{Addr: be.addr(), Protocol: H2C}, nil
	})
	addr := startProxy(t, &Server{Router: router, Pool: pool})
	body := payload(300 << 10)
	want := fmt.Sprintf("%d %s", len(body), digest(body))
	empty := fmt.Sprintf("0 %s", digest(nil))

	t.Run("forwards a GET over HTTP/2 with Host, target and request id", func(t *testing.T) {
		c := dial(t, addr)
		resp := c.roundTrip("GET http://svc.test:8080/p?q=1 HTTP/1.1\r\nHost: svc.test:8080\r\nTE: trailers\r\n\r\n")
		if resp.StatusCode != 200 || resp.body != empty {
			t.Fatalf("got %d %q", resp.StatusCode, resp.body)
		}
		if h := resp.Header; h.Get("X-Seen-Host") != "svc.test:8080" || h.Get("X-Seen-Uri") != "/p?q=1" ||
			h.Get("X-Seen-Te") != "trailers" || len(h.Get("X-Seen-Request-Id")) != 36 {
			t.Errorf("upstream saw %v", h)
		}
	})
	t.Run("streams Content-Length and chunked bodies", func(t *testing.T) {
		c := dial(t, addr)
		go io.WriteString(c.nc, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+string(body)+
			"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk(body, 7777))
		for i := range 2 {
			if resp := c.read("POST"); resp.StatusCode != 200 || resp.body != want {
				t.Fatalf("request %d: got %d %q", i, resp.StatusCode, resp.body)
			}
		}
	})
	t.Run("relays trailers in a chunked response", func(t *testing.T) {
		c := dial(t, addr)
		resp := c.roundTrip("GET /?trailer=1 HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.body != empty || resp.Trailer.Get("Grpc-Status") != "0" {
			t.Errorf("got %q trailers %v", resp.body, resp.Trailer)
		}
	})
	t.Run("answers an HTTP/1.0 client without chunking", func(t *testing.T) {
		c := dial(t, addr)
		resp := c.roundTrip("GET /?trailer=1 HTTP/1.0\r\nHost: a\r\n\r\n")
		if resp.body != empty || len(resp.TransferEncoding) > 0 || !resp.Close {
			t.Errorf("got %q %v close=%v", resp.body, resp.TransferEncoding, resp.Close)
		}
	})
	if n := be.conns.Load(); n != 1 {
		t.Errorf("backend accepted %d connections, want 1 multiplexed", n)
	}
	t.Run("answers 503 when no h2c upstream can be reached", func(t *testing.T) {
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
			return Upstream{Addr: "127.0.0.1:1", Protocol: H2C}, nil
		})
		c := dial(t, startProxy(t, &Server{Router: router}))
		if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 503 {
			t.Errorf("status %d %q, want 503", resp.StatusCode, resp.body)
		}
	})
}

func TestH2CClientBodyFailures(t *testing.T) {
	t.Parallel()
	be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/duplex" {
			// Answer at once and stream while reading, as gRPC streams do.
			io.WriteString(w, "started")
			w.(http.Flusher).Flush()
		}
		if _, err := io.ReadAll(r.Body); err != nil {
			return
		}
		io.WriteString(w, "read")
	})
	tests := []struct {
		name    string
		request string
		status  int  // 0: the client gets no response
		cut     bool // the client half-closes after its request
	}{
		{name: "blames nobody but the client when it stops sending its body", cut: true,
			request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b"},
		{name: "answers 400 to a malformed chunked body and blames nobody but the client", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			done := make(chan error, 1)
			router := &funcRouter{
				route: func(*RequestHead, int) (Upstream, *Reject) {
					return Upstream{Addr: be.addr(), Protocol: H2C}, nil
				},
				done: func(_ Upstream, err error) { done <- err },
			}
			c := dial(t, startProxy(t, &Server{Router: router}))
			c.send(tt.request)
			if tt.cut {
				c.nc.(*net.TCPConn).CloseWrite()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Done got %v, want nil for a failure of the client", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Done was not called")
			}
			c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
			resp, err := http.ReadResponse(c.br, nil)
			switch {
			case tt.status == 0 && err == nil:
				t.Errorf("client got %d, want no response", resp.StatusCode)
			case tt.status != 0 && err != nil:
				t.Errorf("client got %v, want %d", err, tt.status)
			case tt.status != 0 && resp.StatusCode != tt.status:
				t.Errorf("client got %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	t.Run("blames nobody but the client when it stops sending its body to a streaming upstream", func(t *testing.T) {
		t.Parallel()
		done := make(chan error, 1)
		router := &funcRouter{
			route: func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{Addr: be.addr(), Protocol: H2C}, nil
			},
			done: func(_ Upstream, err error) { done <- err },
		}
		c := dial(t, startProxy(t, &Server{Router: router}))
		c.send("POST /duplex HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly ten b")
		if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 200 ") {
			t.Fatalf("head %q (%v), want 200", head, err)
		}
		c.nc.(*net.TCPConn).CloseWrite()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Done got %v, want nil for a failure of the client", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Done was not called")
		}
	})
}
