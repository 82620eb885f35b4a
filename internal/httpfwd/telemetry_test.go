package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/accesslog"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// seen is a telemetry.Request as a test compares it: copied, since the record is reused.
type seen struct {
	method, path, authority, protocol, flags, host, cluster, userAgent, forwardedFor string
	status                                                                           int
	requestBytes, responseBytes                                                      int64
	upstreamTimed                                                                    bool
}

// recorder is a Sink that keeps a copy of each request record.
type recorder struct {
	mu   sync.Mutex
	reqs []seen
	got  chan struct{}
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 64)} }

func (r *recorder) Request(q *telemetry.Request) {
	s := seen{method: string(q.Method), path: string(q.Path), authority: string(q.Authority),
		protocol: q.Protocol, flags: q.Flags.String(), host: q.UpstreamHost, status: q.Status,
		userAgent: string(q.UserAgent), forwardedFor: string(q.ForwardedFor),
		requestBytes: q.RequestBytes, responseBytes: q.ResponseBytes, upstreamTimed: q.UpstreamTime >= 0}
	if q.Service != nil {
		s.cluster = q.Service.Cluster
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, s)
	r.mu.Unlock()
	r.got <- struct{}{}
}

func (*recorder) ConnOpened(*telemetry.Conn) {}
func (*recorder) ConnClosed(*telemetry.Conn) {}

// next waits for the next record, with a margin wide enough for a loaded CI machine.
func (r *recorder) next(t *testing.T) seen {
	t.Helper()
	select {
	case <-r.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no telemetry record within 10s")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.reqs[0]
	r.reqs = r.reqs[1:]
	return s
}

var testService = &telemetry.Service{Host: "web.test", Name: "web.test", Namespace: "default", Cluster: "outbound|80||web.test"}

// rawUpstream is an upstream that reads one request head and then does what answer says.
func rawUpstream(t *testing.T, answer func(nc net.Conn)) string {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err != nil {
			return
		}
		answer(nc)
	}).addr()
}

func TestEachRequestIsReportedWithEnvoysResponseFlags(t *testing.T) {
	t.Parallel()
	ok := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }).addr()
	silent := rawUpstream(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	garbage := rawUpstream(t, func(nc net.Conn) { io.WriteString(nc, "SPDY/9 what\r\n\r\n") })
	hangUp := rawUpstream(t, func(nc net.Conn) {})
	tests := []struct {
		name    string
		up      Upstream
		reject  *Reject
		limits  Limits
		request string
		want    seen
	}{
		{name: "a forwarded request has no flag, its endpoint, cluster and byte counts",
			up:      Upstream{Addr: ok, Service: testService},
			request: "POST /p?q=1 HTTP/1.1\r\nHost: web.test\r\nUser-Agent: ua/1\r\nX-Forwarded-For: 10.1.1.1\r\nContent-Length: 3\r\n\r\nabc",
			want: seen{method: "POST", path: "/p?q=1", authority: "web.test", protocol: "HTTP/1.1", flags: "-", status: 200,
				host: ok, cluster: testService.Cluster, userAgent: "ua/1", forwardedFor: "10.1.1.1",
				requestBytes: 3, responseBytes: 5, upstreamTimed: true}},
		{name: "an absolute-form target is logged by its path and authority",
			up:      Upstream{Addr: ok, Endpoint: "10.9.9.9:80"},
			request: "GET http://web.test:8080 HTTP/1.1\r\nHost: other\r\n\r\n",
			want: seen{method: "GET", path: "/", authority: "web.test:8080", protocol: "HTTP/1.1", flags: "-", status: 200,
				host: "10.9.9.9:80", responseBytes: 5, upstreamTimed: true}},
		{name: "a dead upstream tried three times is a connect failure with retries exhausted",
			up:      Upstream{Addr: "127.0.0.1:1"},
			request: "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
			want:    seen{method: "GET", path: "/", authority: "web.test", protocol: "HTTP/1.1", flags: "UF,URX", status: 503, host: "127.0.0.1:1"}},
		{name: "a dead upstream tried once is only a connect failure",
			up: Upstream{Addr: "127.0.0.1:1"}, limits: Limits{MaxAttempts: 1},
			request: "GET / HTTP/1.0\r\nHost: web.test\r\n\r\n",
			want:    seen{method: "GET", path: "/", authority: "web.test", protocol: "HTTP/1.0", flags: "UF", status: 503, host: "127.0.0.1:1"}},
		{name: "a refusal carries the flags and service the router gave it",
			reject:  &Reject{Status: 502, Flags: telemetry.NoRoute, Service: &telemetry.Service{Cluster: "BlackHoleCluster"}},
			request: "GET /x HTTP/1.1\r\nHost: nowhere.test\r\n\r\n",
			want:    seen{method: "GET", path: "/x", authority: "nowhere.test", protocol: "HTTP/1.1", flags: "NR", status: 502, cluster: "BlackHoleCluster"}},
		{name: "an upstream that never answers is an upstream timeout",
			up: Upstream{Addr: silent}, limits: Limits{StreamIdleTimeout: 300 * time.Millisecond},
			request: "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
			want:    seen{method: "GET", path: "/", authority: "web.test", protocol: "HTTP/1.1", flags: "UT", status: 504, host: silent}},
		{name: "a malformed response is an upstream protocol error",
			up:      Upstream{Addr: garbage},
			request: "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
			want:    seen{method: "GET", path: "/", authority: "web.test", protocol: "HTTP/1.1", flags: "UPE", status: 502, host: garbage}},
		{name: "an upstream that hangs up before answering is an upstream reset",
			up:      Upstream{Addr: hangUp},
			request: "GET / HTTP/1.1\r\nHost: web.test\r\n\r\n",
			want:    seen{method: "GET", path: "/", authority: "web.test", protocol: "HTTP/1.1", flags: "UR", status: 502, host: hangUp}},
		{name: "a malformed request head is a downstream protocol error",
			up:      Upstream{Addr: ok},
			request: "GET / HTTP/1.1\r\nHost: web.test\r\nBad Field: x\r\n\r\n",
			want:    seen{protocol: "HTTP/1.1", flags: "DPE", status: 400}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return tt.up, tt.reject })
			c := dial(t, startProxy(t, &Server{Router: router, Limits: tt.limits, Telemetry: rec}))
			c.roundTrip(tt.request)
			if got := rec.next(t); got != tt.want {
				t.Errorf("record\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestAClientThatLeavesMidResponseIsReportedDownstreamClosed(t *testing.T) {
	t.Parallel()
	left := make(chan struct{})
	up := rawUpstream(t, func(nc net.Conn) {
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\nfirst")
		<-left
		chunk := make([]byte, 32<<10)
		// Keeps sending until the proxy, finding its client gone, hangs up on us too.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
			if _, err := nc.Write(chunk); err != nil {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	rec := newRecorder()
	c := dial(t, startProxy(t, &Server{Router: staticRouter(up), Telemetry: rec}))
	c.send("GET /big HTTP/1.1\r\nHost: web.test\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 5))
	c.nc.Close()
	close(left)
	got := rec.next(t)
	if got.flags != "DC" || got.status != 200 || got.responseBytes < 5 {
		t.Errorf("record %+v, want flags DC, status 200 and the bytes sent", got)
	}
}

func TestHTTP2StreamsAreReportedWithTheirFlags(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hold" {
			io.WriteString(w, "ok")
			return
		}
		for {
			io.WriteString(w, ".")
			w.(http.Flusher).Flush()
			select {
			case <-release:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	defer close(release)
	rec := newRecorder()
	up := Upstream{Addr: be.addr(), Service: testService}
	srv := &Server{Router: RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return up, nil }),
		Limits: Limits{MaxUpstreamConns: 1, StreamIdleTimeout: time.Second}, Telemetry: rec}
	proxy := startProxy(t, srv)
	client := h2cClient(t)
	get := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+proxy+path, nil)
		req.Host = "web.test"
		req.Header.Set("User-Agent", "h2/1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get("/one")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	want := seen{method: "GET", path: "/one", authority: "web.test", protocol: "HTTP/2", flags: "-", status: 200,
		host: be.addr(), cluster: testService.Cluster, userAgent: "h2/1", responseBytes: 2, upstreamTimed: true}
	if got := rec.next(t); got != want {
		t.Errorf("a forwarded stream\n got %+v\nwant %+v", got, want)
	}
	held := get("/hold")
	defer held.Body.Close()
	if _, err := io.ReadFull(held.Body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	over := get("/next")
	io.Copy(io.Discard, over.Body)
	over.Body.Close()
	got := rec.next(t)
	if got.flags != "UO" || got.status != 503 || !strings.HasPrefix(got.path, "/next") {
		t.Errorf("a stream held back by the connection cap: %+v, want UO and 503", got)
	}
}

// TestASinkAddsNoAllocationToTheKeepAlivePath is not parallel: AllocsPerRun counts the whole
// process. The same keep-alive round trip is measured without a Sink and with one that keeps
// nothing; the record lives in the connection, so the two must cost the same.
func TestASinkAddsNoAllocationToTheKeepAlivePath(t *testing.T) {
	up := benchBackend(t)
	measure := func(sink telemetry.Sink) float64 {
		return keepAliveAllocs(t, &Server{Router: staticRouter(up), Telemetry: sink},
			"GET /hello HTTP/1.1\r\nHost: bench.test\r\nUser-Agent: bench/1.0\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n")
	}
	without := measure(nil)
	with := measure(telemetry.Discard{})
	if with > without+0.05 {
		t.Errorf("a round trip allocates %.2f times with a Sink, %.2f without", with, without)
	}
	t.Logf("allocations per keep-alive round trip: %.2f without a Sink, %.2f with telemetry.Discard", without, with)
}

func TestAStalledExchangeIsReportedByWhereItStalled(t *testing.T) {
	t.Parallel()
	h1 := startBackend(t, pausingHandler)
	h2 := startH2CBackend(t, pausingHandler)
	tests := []struct {
		name   string
		up     Upstream
		query  string
		status int
		flags  string
	}{
		{name: "a response head later than the stream idle timeout is an upstream timeout",
			up: Upstream{Addr: h1.addr()}, query: "head=1200ms", status: 504, flags: "UT"},
		{name: "a response body pausing past it is a stream idle timeout",
			up: Upstream{Addr: h1.addr()}, query: "body=1200ms", status: 200, flags: "SI"},
		{name: "an h2c response head later than it is an upstream timeout",
			up: Upstream{Addr: h2.addr(), Protocol: H2C}, query: "head=1200ms", status: 504, flags: "UT"},
		{name: "an h2c response body pausing past it is a stream idle timeout",
			up: Upstream{Addr: h2.addr(), Protocol: H2C}, query: "body=1200ms", status: 200, flags: "SI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) { return tt.up, nil })
			srv := &Server{Router: router, Limits: Limits{StreamIdleTimeout: testStreamIdle}, Telemetry: rec}
			c := dial(t, startProxy(t, srv))
			c.send("GET /?" + tt.query + " HTTP/1.1\r\nHost: web.test\r\n\r\n")
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body) // a cut body ends early; that is the point
			got := rec.next(t)
			if got.status != tt.status || got.flags != tt.flags {
				t.Errorf("record %+v, want status %d and flags %s", got, tt.status, tt.flags)
			}
		})
	}
}

// BenchmarkForwardWithTelemetry is BenchmarkForward with a Sink: telemetry.Discard, which
// shows what filling the record costs, and the access log writing to a discarding output, which
// adds formatting and the queue. Compare its cpu-µs/op with BenchmarkForward's.
func BenchmarkForwardWithTelemetry(b *testing.B) {
	backend := benchBackend(b)
	log := accesslog.New(io.Discard, accesslog.Options{BufferLines: 1 << 16})
	b.Cleanup(func() { log.Close() })
	for _, sink := range []struct {
		name string
		sink telemetry.Sink
	}{{name: "discard", sink: telemetry.Discard{}}, {name: "accesslog", sink: log}} {
		addr := startProxy(b, &Server{Router: staticRouter(backend), Telemetry: sink.sink})
		b.Run(sink.name+"/"+benchRequests[0].name, func(b *testing.B) { runClients(b, addr, benchRequests[0].raw) })
	}
	b.Cleanup(func() {
		if n := log.Dropped(); n > 0 {
			b.Logf("the access log dropped %d lines", n)
		}
	})
}
