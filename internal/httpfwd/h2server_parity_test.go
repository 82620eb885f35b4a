package httpfwd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests hold HTTP/2 client streams to what the HTTP/1.1 path already does: loops,
// trailers, error answers and the field cap.

// h2Get sends one request over h2c to proxy with the Host and header fields given.
func h2Get(t *testing.T, client *http.Client, proxy, host string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+proxy+"/", nil)
	req.Host = host
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestHTTP2StreamsCarryVia(t *testing.T) {
	t.Parallel()
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Via", strings.Join(r.Header.Values("Via"), ", "))
	}
	h1, h2 := startBackend(t, echo), startH2CBackend(t, echo)
	tests := []struct {
		name  string
		proto Protocol
		via   string
		want  string // with T for the proxy's token
	}{
		{name: "adds our Via to a stream forwarded to an HTTP/1.1 upstream", want: "1.1 T"},
		{name: "appends our Via to the client's towards an HTTP/1.1 upstream", via: "1.0 fred", want: "1.0 fred, 1.1 T"},
		{name: "appends our Via to the client's towards an h2c upstream", proto: H2C, via: "1.0 fred", want: "1.0 fred, 1.1 T"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := h1.addr()
			if tt.proto == H2C {
				addr = h2.addr()
			}
			pool := &Pool{}
			t.Cleanup(func() { pool.Close() })
			srv := &Server{Pool: pool, Router: RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{Addr: addr, Protocol: tt.proto}, nil
			})}
			header := http.Header{}
			if tt.via != "" {
				header.Set("Via", tt.via)
			}
			resp, _ := h2Get(t, h2cClient(t), startProxy(t, srv), "a.test", header)
			want := strings.ReplaceAll(tt.want, "T", srv.via)
			if got := resp.Header.Get("X-Seen-Via"); resp.StatusCode != 200 || got != want {
				t.Errorf("got %d, upstream saw Via %q, want %q", resp.StatusCode, got, want)
			}
		})
	}
}

func TestHTTP2ForwardingLoopIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		proto Protocol
		via   bool // the client names the proxy itself, rather than the route looping
	}{
		{name: "answers 508 to a stream routed back to its own listener over h2c", proto: H2C},
		{name: "answers 508 to a stream routed back to its own listener over HTTP/1.1"},
		{name: "answers 508 to a stream whose Via names the proxy", via: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := listen(t)
			var routed atomic.Int64
			pool := &Pool{}
			t.Cleanup(func() { pool.Close() })
			srv := &Server{ViaToken: "edge-1", Pool: pool, Router: RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				if routed.Add(1) > 10 {
					// Bounds the loop when detection fails, so the test ends.
					return Upstream{}, &Reject{Status: 500, Body: "looped\n"}
				}
				return Upstream{Addr: ln.Addr().String(), Protocol: tt.proto}, nil
			})}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			t.Cleanup(func() { srv.Close(); <-done; srv.serveGroup.Wait() })
			header, wantRouted := http.Header{}, int64(1)
			if tt.via {
				header.Set("Via", "1.0 fred, 1.1 Edge-1")
				wantRouted = 0
			}
			resp, _ := h2Get(t, h2cClient(t), ln.Addr().String(), "a.test", header)
			if resp.StatusCode != 508 || routed.Load() != wantRouted {
				t.Errorf("got %d after routing %d times, want 508 after routing %d", resp.StatusCode, routed.Load(), wantRouted)
			}
			if got := srv.Stats().LoopsDetected; got != 1 {
				t.Errorf("Stats().LoopsDetected = %d, want 1", got)
			}
		})
	}
}

// trailerEcho answers with the request trailers it got, names sorted, in X-Got-Trailers.
func trailerEcho(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	var got []string
	for k, vs := range r.Trailer {
		if len(vs) > 0 {
			got = append(got, k+"="+strings.Join(vs, ","))
		}
	}
	sort.Strings(got)
	w.Header().Set("X-Got-Trailers", strings.Join(got, " "))
}

func TestHTTP2StreamsDropForbiddenRequestTrailers(t *testing.T) {
	t.Parallel()
	h1, h2 := startBackend(t, trailerEcho), startH2CBackend(t, trailerEcho)
	tests := []struct {
		name  string
		proto Protocol
	}{
		{name: "drops them towards an HTTP/1.1 upstream"},
		{name: "drops them towards an h2c upstream", proto: H2C},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := h1.addr()
			if tt.proto == H2C {
				addr = h2.addr()
			}
			pool := &Pool{}
			t.Cleanup(func() { pool.Close() })
			srv := &Server{Pool: pool, Router: RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{Addr: addr, Protocol: tt.proto}, nil
			})}
			// Go's HTTP/2 server refuses the framing fields in a trailer itself; these are
			// the ones it lets through and a trailer still must not carry.
			trailer := http.Header{"Set-Cookie": nil, "X-Request-Id": nil, "Location": nil, "Cookie": nil, "X-Sum": nil}
			pr, pw := io.Pipe()
			req, _ := http.NewRequest("POST", "http://"+startProxy(t, srv)+"/", pr)
			req.Host, req.Trailer = "a.test", trailer
			go func() {
				io.WriteString(pw, "hello")
				for k := range trailer {
					trailer[k] = []string{"v"}
				}
				pw.Close()
			}()
			resp, err := h2cClient(t).Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Got-Trailers"); resp.StatusCode != 200 || got != "X-Sum=v" {
				t.Errorf("got %d, upstream got trailers %q, want only X-Sum=v", resp.StatusCode, got)
			}
		})
	}
}

func TestHTTP2StreamsDropForbiddenResponseTrailers(t *testing.T) {
	t.Parallel()
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"+forbiddenTrailers)
		}
	})
	srv := &Server{Router: staticRouter(be.addr())}
	req, _ := http.NewRequest("GET", "http://"+startProxy(t, srv)+"/", nil)
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got []string
	for k, vs := range resp.Trailer {
		got = append(got, k+"="+strings.Join(vs, ","))
	}
	sort.Strings(got)
	if want := "Grpc-Status=0 X-Sum=42"; string(body) != "hi" || strings.Join(got, " ") != want {
		t.Errorf("got body %q and trailers %q, want hi and %q", body, got, want)
	}
}

func TestHTTP2EngineErrorsAreGeneric(t *testing.T) {
	t.Parallel()
	garbage := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 2x0 what\r\n\r\n")
		}
	})
	switcher := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err == nil {
			io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		}
	})
	silent := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		readRawRequest(br)
		io.Copy(io.Discard, br) // never answers
	})
	tests := []struct {
		name     string
		upstream string
		status   int
		reason   string
		clientID string // the id the client sent, or "" when the engine makes one
	}{
		{name: "answers connect failures after MaxAttempts with 503 and no endpoint address",
			upstream: closedAddr(t), status: 503, reason: "upstream connect failed"},
		{name: "names the client's own request id", upstream: closedAddr(t), status: 503,
			reason: "upstream connect failed", clientID: "client-7"},
		{name: "answers a malformed response with 502", upstream: garbage.addr(), status: 502,
			reason: "upstream connection failed"},
		{name: "answers an unasked-for 101 with 502", upstream: switcher.addr(), status: 502,
			reason: "upstream switched protocols"},
		{name: "answers no response within the stream idle timeout with 504", upstream: silent.addr(),
			status: 504, reason: "upstream timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs logBuffer
			router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{Addr: tt.upstream, Key: "endpoint " + tt.upstream}, nil
			})
			srv := &Server{Router: router, Logger: logs.logger(),
				Limits: Limits{MaxAttempts: 1, StreamIdleTimeout: 300 * time.Millisecond}}
			header := http.Header{}
			if tt.clientID != "" {
				header.Set("X-Request-Id", tt.clientID)
			}
			resp, body := h2Get(t, h2cClient(t), startProxy(t, srv), "a.test", header)
			id := resp.Header.Get("X-Request-Id")
			if tt.clientID != "" && id != tt.clientID || id == "" {
				t.Fatalf("response x-request-id %q, want the client's %q or a generated one", id, tt.clientID)
			}
			want := "meshentry: " + tt.reason + "; request id " + id + "\n"
			if resp.StatusCode != tt.status || body != want {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, want)
			}
			if line := logLine(logs.String(), "request_id="+id); line == "" || !strings.Contains(line, tt.upstream) {
				t.Errorf("no log line names request id %s and upstream %s in %q", id, tt.upstream, logs.String())
			}
		})
	}
}

func TestHTTP2RejectsCarryTheRequestID(t *testing.T) {
	t.Parallel()
	var seen []string
	var mu sync.Mutex
	router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
		mu.Lock()
		seen = append(seen, string(req.RequestID))
		mu.Unlock()
		return Upstream{}, &Reject{Status: 502, Body: "no route\n", Header: []Field{{Name: "X-Request-Id", Value: "router's"}}}
	})
	proxy := startProxy(t, &Server{Router: router})
	resp, body := h2Get(t, h2cClient(t), proxy, "a.test", http.Header{"X-Request-Id": {"client-9"}})
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "client-9" || body != "no route; request id client-9\n" {
		t.Errorf("got x-request-id %q and body %q, want client-9 once and the Router's body naming it", got, body)
	}
	mu.Lock()
	if len(seen) != 1 || seen[0] != "client-9" {
		t.Errorf("the Router saw request ids %q, want the client's", seen)
	}
	mu.Unlock()
	resp, _ = h2Get(t, h2cClient(t), proxy, "a.test", nil)
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || len(got[0]) != 36 {
		t.Errorf("got x-request-id %q, want one generated id", got)
	}
}

func TestHTTP2StreamsCapHeaderFields(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(http.ResponseWriter, *http.Request) {})
	tests := []struct {
		name   string
		limits Limits
		extra  int // fields besides Host, User-Agent and Accept-Encoding
		status int
	}{
		{name: "refuses a stream over the default 100 fields with 431", extra: 98, status: 431},
		{name: "forwards a stream at the default 100 fields", extra: 97, status: 200},
		{name: "refuses a stream over a configured limit with 431", limits: Limits{MaxHeaders: 10}, extra: 8, status: 431},
		{name: "forwards a stream at a configured limit", limits: Limits{MaxHeaders: 10}, extra: 7, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &Server{Router: staticRouter(be.addr()), Limits: tt.limits}
			header := http.Header{"User-Agent": {"t"}, "Accept-Encoding": {"identity"}}
			for i := range tt.extra {
				header.Set(fmt.Sprintf("X-F%d", i), "v")
			}
			resp, body := h2Get(t, h2cClient(t), startProxy(t, srv), "a.test", header)
			if resp.StatusCode != tt.status {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.status)
			}
			want := uint64(0)
			if tt.status == 431 {
				want = 1
				id := resp.Header.Get("X-Request-Id")
				if wantBody := "meshentry: too many header fields; request id " + id + "\n"; id == "" || body != wantBody {
					t.Errorf("body %q with x-request-id %q, want %q", body, id, wantBody)
				}
			}
			if got := srv.Stats().TooManyHeaders; got != want {
				t.Errorf("Stats().TooManyHeaders = %d, want %d", got, want)
			}
		})
	}
}
