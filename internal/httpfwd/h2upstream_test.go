package httpfwd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 streams to an HTTP/1.1 upstream take their connections from the engine's Pool and
// give them back there: a connection left by a stream serves the next stream and an HTTP/1.1
// client's request alike, and an idle one holds no goroutine of the proxy's.
func TestHTTP2StreamsPoolTheirHTTP1UpstreamsInTheEnginePool(t *testing.T) {
	const streams = 20
	var arrived sync.WaitGroup
	arrived.Add(streams)
	release := make(chan struct{})
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/together" {
			arrived.Done()
			<-release // all streams in flight at once: each needs a connection of its own
		}
		fmt.Fprint(w, "ok")
	})
	pool := &Pool{}
	t.Cleanup(func() { pool.Close() })
	proxy := startProxy(t, &Server{Router: staticRouter(be.addr()), Pool: pool})
	client := h2cClient(t)
	get := func(path string) {
		t.Helper()
		resp, err := client.Get("http://" + proxy + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
		}
	}

	for range 5 {
		get("/one-after-another")
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("5 streams one after another opened %d upstream connections, want 1", n)
	}
	if n := pool.Idle(); n != 1 {
		t.Errorf("the Pool holds %d idle connections, want the streams' one", n)
	}
	if r := dial(t, proxy).roundTrip("GET / HTTP/1.1\r\nHost: web.test\r\n\r\n"); r.StatusCode != 200 {
		t.Fatalf("HTTP/1.1 request: %d", r.StatusCode)
	}
	if n := be.conns.Load(); n != 1 {
		t.Errorf("the HTTP/1.1 request opened a connection of its own (%d in all), want the stream's", n)
	}

	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for range streams {
		wg.Add(1)
		go func() { defer wg.Done(); get("/together") }()
	}
	arrived.Wait()
	close(release)
	wg.Wait()
	if n := pool.Idle(); n < streams {
		t.Fatalf("the Pool holds %d idle connections after %d concurrent streams, want at least %d", n, streams, streams)
	}
	// The backend serves each idle connection on a goroutine of this process; anything beyond
	// those is the proxy's (net/http's Transport kept two per pooled connection).
	upstreamConns := int(be.conns.Load()) - 1
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra := runtime.NumGoroutine() - before - upstreamConns
		if extra <= streams/4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines beyond the backend's for %d idle pooled connections", extra, upstreamConns)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An upstream may close a pooled connection just as a stream's request reaches it. A stream
// without a body is then sent again on a fresh connection, as the HTTP/1.1 path does; one with
// a body is not, since part of it may have been taken, and gets an error answer instead.
func TestHTTP2StreamRetriesARequestAStalePooledConnectionDropped(t *testing.T) {
	var requests atomic.Int64
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		// Each connection answers its first request and drops the second unanswered.
		for i := 0; ; i++ {
			if _, err := readRawRequest(br); err != nil {
				return
			}
			requests.Add(1)
			if i == 1 {
				return
			}
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	proxy := startProxy(t, &Server{Router: staticRouter(be.addr())})
	client := h2cClient(t)
	send := func(method, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+proxy+"/", nil)
		if body != "" {
			req.Body = io.NopCloser(strings.NewReader(body)) // no GetBody: the client cannot resend it
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 3 {
		if got := send("GET", ""); got != 200 {
			t.Fatalf("GET %d: status %d, want 200", i, got)
		}
	}
	// Connection 1 answered GET 0 and dropped GET 1, which connection 2 answered; it dropped
	// GET 2, which connection 3 answered.
	if c, r := be.conns.Load(), requests.Load(); c != 3 || r != 5 {
		t.Errorf("the upstream got %d requests on %d connections, want 5 on 3", r, c)
	}
	if got := send("POST", "payload"); got < 500 {
		t.Errorf("a POST the upstream dropped got %d, want an error status", got)
	}
	if c := be.conns.Load(); c != 3 {
		t.Errorf("the dropped POST was sent again (%d connections), want it answered as it failed", c)
	}
}

// BenchmarkHTTP2StreamToHTTP1 measures a GET stream from an h2c client, 16 at a time over one
// connection, to a keep-alive HTTP/1.1 upstream, all over real loopback sockets.
func BenchmarkHTTP2StreamToHTTP1(b *testing.B) {
	backend := benchBackend(b)
	proxy := startProxy(b, &Server{Router: staticRouter(backend)})
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := "http://" + proxy + "/"
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.SetParallelism(8) // 16 streams at once on this machine's 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.StopTimer()
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}
