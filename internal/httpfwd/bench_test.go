package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The benchmarks run a keep-alive client, the proxy under test and a backend in one process on
// loopback. Client and backend are minimal raw HTTP/1.1 loops built on this package's parser, so
// that the proxy dominates the cost; BenchmarkDirect measures them without a proxy. cpu-µs/op is
// the CPU time of the whole process per request: the proxy's share is the difference to Direct.

const benchResponse = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"

// benchBackend answers every request with benchResponse, reading and discarding any body.
func benchBackend(b testing.TB) string {
	ln := listen(b)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br := bufio.NewReaderSize(nc, 16<<10)
				response := []byte(benchResponse)
				var head []byte
				var req RequestHead
				for {
					var err error
					if head, err = readHead(br, head, 64<<10); err != nil {
						return
					}
					if err := req.parse(head); err != nil {
						return
					}
					if req.length > 0 {
						br.Discard(int(req.length))
					}
					if _, err := nc.Write(response); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// benchRequests are the request shapes measured.
var benchRequests = []struct {
	name string
	raw  string
}{
	{name: "GET", raw: "GET /hello?x=1 HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"},
	{name: "POST-4KiB", raw: "POST /upload HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench/1.0\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n" + strings.Repeat("x", 4096)},
}

// runClients sends b.N requests over several keep-alive connections to addr.
func runClients(b *testing.B, addr, raw string) {
	b.SetParallelism(4) // 4 connections per CPU, like wrk with a few connections
	b.ReportAllocs()
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		br := bufio.NewReaderSize(nc, 16<<10)
		var head []byte
		var resp responseHead
		req := []byte(raw)
		for pb.Next() {
			if _, err := nc.Write(req); err != nil {
				b.Error(err)
				return
			}
			if head, err = readHead(br, head, 64<<10); err != nil {
				b.Error(err)
				return
			}
			if err := resp.parse(head); err != nil || resp.status != 200 || resp.length < 0 {
				b.Errorf("bad response %q: %v", head, err)
				return
			}
			if _, err := br.Discard(int(resp.length)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

func BenchmarkDirect(b *testing.B) {
	backend := benchBackend(b)
	for _, r := range benchRequests {
		b.Run(r.name, func(b *testing.B) { runClients(b, backend, r.raw) })
	}
}

func BenchmarkForward(b *testing.B) {
	backend := benchBackend(b)
	addr := startProxy(b, &Server{Router: staticRouter(backend)})
	for _, r := range benchRequests {
		b.Run(r.name, func(b *testing.B) { runClients(b, addr, r.raw) })
	}
}

func BenchmarkReverseProxyBaseline(b *testing.B) {
	backend := benchBackend(b)
	target, _ := url.Parse("http://" + backend)
	transport := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = transport
	rp.ErrorLog = nil
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	ln := listen(b)
	go srv.Serve(ln)
	defer srv.Close()
	for _, r := range benchRequests {
		b.Run(r.name, func(b *testing.B) { runClients(b, ln.Addr().String(), r.raw) })
	}
}

// BenchmarkParseRequestHead measures the head parser alone.
func BenchmarkParseRequestHead(b *testing.B) {
	raw := []byte("GET /api/v1/items?limit=10 HTTP/1.1\r\nHost: svc.example.com:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n" +
		"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n" +
		"Connection: keep-alive\r\nCookie: session=abcdef0123456789; theme=dark\r\nX-Request-Id: 1b4e28ba-2fa1-11d2-883f-0016d3cca427\r\n\r\n")
	var req RequestHead
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := req.parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// TestServeForLoadGenerators runs the engine until interrupted when HTTPFWD_LISTEN and
// HTTPFWD_UPSTREAM are set, so external load generators (wrk) can measure it beside HAProxy:
//
//	go test -c -o /tmp/httpfwd.test ./internal/httpfwd
//	HTTPFWD_LISTEN=127.0.0.1:18002 HTTPFWD_UPSTREAM=127.0.0.1:18080 /tmp/httpfwd.test -test.run ServeForLoad
func TestServeForLoadGenerators(t *testing.T) {
	listenAddr, upstream := os.Getenv("HTTPFWD_LISTEN"), os.Getenv("HTTPFWD_UPSTREAM")
	if listenAddr == "" || upstream == "" {
		t.Skip("set HTTPFWD_LISTEN and HTTPFWD_UPSTREAM to serve")
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Router: staticRouter(upstream)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}
	srv.serveGroup.Wait()
}
