package httpfwd

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReject(t *testing.T) {
	t.Parallel()
	router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
		return Upstream{}, &Reject{
			Status: 502,
			Reason: `no ServiceEntry declares host "` + req.Host + `"`,
			Header: []Field{{Name: "X-Extra", Value: "a\r\nInjected: yes"}},
			Body:   "unknown host\n",
		}
	})
	c := dial(t, startProxy(t, &Server{Router: router}))
	for range 2 {
		resp := c.roundTrip("GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n")
		if want := "unknown host; request id " + resp.Header.Get("X-Request-Id") + "\n"; resp.StatusCode != 502 || resp.body != want {
			t.Fatalf("got %d %q, want 502 %q", resp.StatusCode, resp.body, want)
		}
		if got := resp.Header.Get("X-Meshentry-Reason"); got != `no ServiceEntry declares host "nowhere.test"` {
			t.Errorf("reason %q", got)
		}
		if resp.Header.Get("Injected") != "" || resp.Header.Get("X-Extra") != "a  Injected: yes" {
			t.Errorf("a caller's field value split the head: %v", resp.Header)
		}
	}
}

func TestRejectStatuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		status, want int
	}{
		{name: "sends 502 for a 100 Continue Reject", status: 100, want: 502},
		{name: "sends 502 for a 101 Switching Protocols Reject", status: 101, want: 502},
		{name: "sends 502 for a 103 Early Hints Reject", status: 103, want: 502},
		{name: "sends 502 for a Reject without status", status: 0, want: 502},
		{name: "sends 502 for a Reject status above 599", status: 600, want: 502},
		{name: "sends a 204 Reject without a body", status: 204, want: 204},
		{name: "sends a 403 Reject as it is", status: 403, want: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
				if req.Host == "next.test" {
					return Upstream{}, &Reject{Status: 403, Body: "next\n"}
				}
				return Upstream{}, &Reject{Status: tt.status, Body: "rejected\n"}
			})
			c := dial(t, startProxy(t, &Server{Router: router}))
			resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if cl := resp.Header.Get("Content-Length"); tt.want == 204 && cl != "" {
				t.Errorf("204 with Content-Length %s", cl)
			}
			// A body sent where none is expected would be read as the next response.
			if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: next.test\r\n\r\n"); resp.StatusCode != 403 || resp.body != "next; request id "+resp.Header.Get("X-Request-Id")+"\n" {
				t.Errorf("next exchange: %d %q", resp.StatusCode, resp.body)
			}
		})
	}
}

func TestRefusedRequests(t *testing.T) {
	t.Parallel()
	be := summingBackend(t)
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	tests := []struct {
		name    string
		request string
		status  int
	}{
		{name: "refuses a head larger than 64 KiB with 431", status: 431,
			request: "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 70<<10) + "\r\n\r\n"},
		{name: "refuses Content-Length together with Transfer-Encoding", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "refuses two Content-Length fields even when equal", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
		{name: "refuses a Content-Length list", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"},
		{name: "refuses a signed Content-Length", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"},
		{name: "refuses a transfer coding that does not end in chunked", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{name: "refuses chunked applied before another coding", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"},
		{name: "refuses chunked applied twice", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "refuses parameters on chunked", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n"},
		{name: "refuses chunked after an empty Transfer-Encoding field", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "refuses an empty list element before chunked", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n"},
		{name: "refuses a quoted chunked", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"},
		{name: "refuses a coding the engine does not implement with 501", status: 501,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{name: "refuses a coding the engine does not implement in a field of its own with 400", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "refuses a control character in a trailer field", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\x01b\r\n\r\n"},
		{name: "refuses Transfer-Encoding from an HTTP/1.0 client", status: 400,
			request: "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{name: "refuses whitespace between a field name and its colon", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
		{name: "refuses obsolete line folding", status: 400,
			request: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n"},
		{name: "refuses two Host fields", status: 400,
			request: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{name: "refuses an HTTP/1.1 request without Host", status: 400,
			request: "GET / HTTP/1.1\r\n\r\n"},
		{name: "refuses a NUL in a field value", status: 400,
			request: "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n"},
		{name: "refuses a bare CR in a field value", status: 400,
			request: "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n"},
		{name: "refuses a field line without a colon", status: 400,
			request: "GET / HTTP/1.1\r\nHost: a\r\nnonsense\r\n\r\n"},
		{name: "refuses a Host with userinfo", status: 400,
			request: "GET http://user@a.test/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "refuses an invalid chunk size", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"},
		{name: "refuses a chunk size line ending in a bare LF", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"},
		{name: "refuses whitespace after a chunk size", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"},
		{name: "refuses an overflowing chunk size", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n"},
		{name: "refuses chunk data longer than its size", status: 400,
			request: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"},
		{name: "refuses a request line without a version", status: 400,
			request: "GET /\r\n\r\n"},
		{name: "refuses a request line with extra spaces", status: 400,
			request: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "refuses a lower-case version", status: 400,
			request: "GET / http/1.1\r\nHost: a\r\n\r\n"},
		{name: "refuses HTTP/2.0 on this connection with 505", status: 505,
			request: "GET / HTTP/2.0\r\nHost: a\r\n\r\n"},
		{name: "refuses a control character in the target", status: 400,
			request: "GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "refuses a malformed percent-escape in the path", status: 400,
			request: "GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "refuses a truncated percent-escape in an absolute-form path", status: 400,
			request: "GET http://a.test/b%4 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "refuses an unsupported target scheme", status: 400,
			request: "GET ftp://a.test/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "refuses binary noise such as a TLS hello", status: 400,
			request: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"},
		{name: "refuses a Content-Length that is not a number", status: 400,
			request: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, addr)
			go io.WriteString(c.nc, tt.request)
			resp := c.read("GET")
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if !resp.Close || !c.closed() {
				t.Error("connection left open after a refused request")
			}
		})
	}
}

func TestUpstreamConnectFailures(t *testing.T) {
	t.Parallel()
	// Port 1 is privileged: no test binds it, where a closed listener's port may be taken by a
	// parallel test's server (another proxy of this process, which would answer 508).
	const dead = "127.0.0.1:1"
	be := echoHeadBackend(t)
	t.Run("answers 503 after the attempts the limits allow and reports each failure", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		var attempts []int
		var failures []error
		router := &funcRouter{
			route: func(_ *RequestHead, attempt int) (Upstream, *Reject) {
				mu.Lock()
				attempts = append(attempts, attempt)
				mu.Unlock()
				return Upstream{Addr: "127.0.0.1:1"}, nil
			},
			done: func(_ Upstream, err error) {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			},
		}
		c := dial(t, startProxy(t, &Server{Router: router}))
		resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != 503 || resp.Header.Get("X-Meshentry-Reason") == "" {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(attempts) != 3 || attempts[2] != 2 || len(failures) != 3 || !errors.Is(failures[0], ErrConnect) {
			t.Errorf("attempts %v failures %v", attempts, failures)
		}
	})
	t.Run("tries the next upstream the Router picks after a connect failure", func(t *testing.T) {
		t.Parallel()
		router := RouterFunc(func(_ *RequestHead, attempt int) (Upstream, *Reject) {
			if attempt == 0 {
				return Upstream{Addr: dead}, nil
			}
			return Upstream{Addr: be.addr()}, nil
		})
		c := dial(t, startProxy(t, &Server{Router: router}))
		if resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n"); resp.StatusCode != 200 {
			t.Errorf("status %d, want 200 from the second upstream", resp.StatusCode)
		}
	})
}

// funcRouter is a Router made of two functions.
type funcRouter struct {
	route func(*RequestHead, int) (Upstream, *Reject)
	done  func(Upstream, error)
}

func (f *funcRouter) Route(req *RequestHead, attempt int) (Upstream, *Reject) {
	return f.route(req, attempt)
}
func (f *funcRouter) Done(up Upstream, err error) { f.done(up, err) }

func TestMalformedUpstreamResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, response string
		status         int
		wantErr        error
	}{
		{name: "answers 502 for a response that is not HTTP", response: "garbage\r\n\r\n", status: 502, wantErr: ErrBadResponse},
		{name: "answers 502 for a four-digit status", response: "HTTP/1.1 2000 OK\r\n\r\n", status: 502, wantErr: ErrBadResponse},
		{name: "answers 502 for an invalid Content-Length", response: "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", status: 502, wantErr: ErrBadResponse},
		{name: "answers 502 for conflicting Content-Length fields", response: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", status: 502, wantErr: ErrBadResponse},
		{name: "answers 502 for a field line without a colon", response: "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", status: 502, wantErr: ErrBadResponse},
		{name: "answers 502 for an unsolicited 101", response: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", status: 502, wantErr: ErrBadResponse},
		{name: "answers 502 when the upstream closes without answering", response: "", status: 502, wantErr: ErrUpstreamClosed},
		{name: "answers 502 when the upstream closes mid-head", response: "HTTP/1.1 200 OK\r\nX-A:", status: 502, wantErr: ErrUpstreamClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
				if _, err := readRawRequest(br); err == nil {
					io.WriteString(nc, tt.response)
				}
			})
			done := make(chan error, 2)
			router := &funcRouter{
				route: func(*RequestHead, int) (Upstream, *Reject) { return Upstream{Addr: be.addr()}, nil },
				done:  func(_ Upstream, err error) { done <- err },
			}
			c := dial(t, startProxy(t, &Server{Router: router}))
			for i := range 2 {
				resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
				if resp.StatusCode != tt.status {
					t.Fatalf("request %d: status %d, want %d", i, resp.StatusCode, tt.status)
				}
				if err := <-done; !errors.Is(err, tt.wantErr) {
					t.Errorf("Done got %v, want %v", err, tt.wantErr)
				}
			}
			if n := be.conns.Load(); n != 2 {
				t.Errorf("backend accepted %d connections, want 2: a broken connection must not be reused", n)
			}
		})
	}
}

func TestBrokenUpstreamBodyCutsTheClientConnection(t *testing.T) {
	t.Parallel()
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nnot-hex\r\n")
		}
	})
	c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("body read completely, want an error from the cut connection")
	}
}

func TestUpstreamTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		readRawRequest(br)
		<-release
	})
	defer close(release)
	done := make(chan error, 1)
	router := &funcRouter{
		route: func(*RequestHead, int) (Upstream, *Reject) { return Upstream{Addr: be.addr()}, nil },
		done:  func(_ Upstream, err error) { done <- err },
	}
	c := dial(t, startProxy(t, &Server{Router: router, Limits: Limits{StreamIdleTimeout: 200 * time.Millisecond}}))
	resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if got := <-done; !errors.Is(got, ErrUpstreamTimeout) {
		t.Errorf("Done got %v, want ErrUpstreamTimeout", got)
	}
}
