package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/accesslog"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/telemetry"
	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// logBuffer is the access log's output, read by the test while the writer goroutine writes it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// line waits for the access-log line containing want, with a margin for a loaded CI machine.
func (b *logBuffer) line(t *testing.T, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		text := b.buf.String()
		b.mu.Unlock()
		for _, l := range strings.Split(text, "\n") {
			if strings.Contains(l, want) {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access-log line with %q within 10s; log:\n%s", want, text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// istioLine splits a text access-log line into its fields (Istio's default format).
var istioLine = regexp.MustCompile(`^\[(\S+)\] "(\S+ \S+ \S+)" (\d+) (\S+) (\S+) (\S+) "(.*?)" (\d+) (\d+) (\d+) (\S+) ` +
	`"(.*?)" "(.*?)" "(.*?)" "(.*?)" "(.*?)" (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)$`)

// normalize replaces what changes from run to run: the start time, the durations, and the
// client's ephemeral port; the proxy's own address reads PROXY.
func normalize(t *testing.T, line, proxyAddr string) string {
	t.Helper()
	f := istioLine.FindStringSubmatch(line)
	if f == nil {
		t.Fatalf("not an Istio access-log line: %q", line)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", f[1]); err != nil {
		t.Errorf("start time %q is not as Envoy prints it: %v", f[1], err)
	}
	f[1], f[10] = "T", "D"
	if f[11] != "-" {
		f[11] = "U"
	}
	if f[19] == proxyAddr {
		f[19] = "PROXY"
	}
	if strings.HasPrefix(f[20], "127.0.0.1:") {
		f[20] = "CLIENT"
	}
	return fmt.Sprintf(`[%s] "%s" %s %s %s %s "%s" %s %s %s %s "%s" "%s" "%s" "%s" "%s" %s %s %s %s %s %s`,
		f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12], f[13], f[14], f[15], f[16], f[17], f[18], f[19], f[20], f[21], f[22])
}

// silentBackend accepts connections and reads what they send, never answering.
func silentBackend(t *testing.T) string {
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
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// endlessBackend answers every request with a huge body it sends slowly, until its client (the
// proxy) hangs up; /hold answers the same for HTTP/2 streams that hold a connection.
func endlessBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000000")
		chunk := make([]byte, 16<<10)
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// rawGet sends one request through the forward proxy and returns the response status.
func rawGet(t *testing.T, proxyAddr, raw string) int {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// flagsConfig declares a working service on ok, one whose endpoints refuse connections, one
// whose endpoint name does not resolve and one whose endpoint never answers (silent).
func flagsConfig(ok, silent string) string {
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ok, namespace: shop}
spec:
  hosts: [ok.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %s}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dead, namespace: shop}
spec:
  hosts: [dead.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 1}}, {address: 127.0.0.2, ports: {http: 1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: gone, namespace: shop}
spec:
  hosts: [gone.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: gone.internal}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow, namespace: shop}
spec:
  hosts: [slow.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %s}, labels: {x: "1"}}]
`, port(ok), port(silent))
}

func TestTheAccessLogHasALineForEachResponseFlag(t *testing.T) {
	t.Parallel()
	ok := backend.HTTP(t, "ok", "127.0.0.1:0")
	silent := silentBackend(t)
	dns := dnstest.Start(t) // gone.internal is not in it: the name does not resolve
	var out logBuffer
	log := accesslog.New(&out, accesslog.Options{FlushInterval: 20 * time.Millisecond})
	t.Cleanup(func() { log.Close() })
	h := startProxy(t, flagsConfig(ok.Addr, silent), Config{Namespace: "shop", HTTP: httpfwd.Limits{StreamIdleTimeout: time.Second}, Telemetry: log}, dns.Addr)
	tests := []struct {
		name    string
		request string
		status  int
		id      string
		want    string
	}{
		{name: "a forwarded request has no flag",
			request: "GET http://ok.test/hello HTTP/1.1\r\nHost: ok.test\r\nUser-Agent: t/1\r\nX-Forwarded-For: 10.0.0.1\r\nX-Request-Id: rid-ok\r\n\r\n",
			status:  200, id: "rid-ok",
			want: `[T] "GET /hello HTTP/1.1" 200 - via_upstream - "-" 0 17 D U "10.0.0.1" "t/1" "rid-ok" "ok.test" "` + ok.Addr +
				`" outbound|80||ok.test - PROXY CLIENT - -`},
		{name: "an undeclared host under REGISTRY_ONLY is NR in the blackhole cluster",
			request: "GET http://undeclared.test/ HTTP/1.1\r\nHost: undeclared.test\r\nX-Request-Id: rid-nr\r\n\r\n",
			status:  502, id: "rid-nr",
			want: `[T] "GET / HTTP/1.1" 502 NR - - "-" 0 0 D - "-" "-" "rid-nr" "undeclared.test" "-" BlackHoleCluster - PROXY CLIENT - -`},
		{name: "a service whose endpoint name does not resolve is UH",
			request: "GET http://gone.test/ HTTP/1.1\r\nHost: gone.test\r\nX-Request-Id: rid-uh\r\n\r\n",
			status:  503, id: "rid-uh",
			want: `[T] "GET / HTTP/1.1" 503 UH - - "-" 0 0 D - "-" "-" "rid-uh" "gone.test" "-" outbound|80||gone.test - PROXY CLIENT - -`},
		{name: "endpoints that refuse every connect are UF and URX",
			request: "GET http://dead.test/ HTTP/1.1\r\nHost: dead.test\r\nX-Request-Id: rid-uf\r\n\r\n",
			status:  503, id: "rid-uf",
			want: `[T] "GET / HTTP/1.1" 503 UF,URX - - "-" 0 0 D - "-" "-" "rid-uf" "dead.test" "HOST" outbound|80||dead.test - PROXY CLIENT - -`},
		{name: "an upstream that never answers is UT",
			request: "GET http://slow.test/ HTTP/1.1\r\nHost: slow.test\r\nX-Request-Id: rid-ut\r\n\r\n",
			status:  504, id: "rid-ut",
			want: `[T] "GET / HTTP/1.1" 504 UT - - "-" 0 0 D - "-" "-" "rid-ut" "slow.test" "` + silent +
				`" outbound|80||slow.test - PROXY CLIENT - -`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rawGet(t, h.addr, tt.request); got != tt.status {
				t.Fatalf("status %d, want %d", got, tt.status)
			}
			got := normalize(t, out.line(t, `"`+tt.id+`"`), h.addr)
			want := tt.want
			if strings.Contains(want, `"HOST"`) {
				// Which dead endpoint was tried last depends on the balancer's draw.
				got = regexp.MustCompile(`"127\.0\.0\.[12]:1"`).ReplaceAllString(got, `"HOST"`)
			}
			if got != want {
				t.Errorf("line\n got %s\nwant %s", got, want)
			}
		})
	}
}

// startLogged starts a proxy on yamlDocs whose access log writes to the returned buffer.
func startLogged(t *testing.T, yamlDocs string, cfg Config) (*harness, *logBuffer) {
	t.Helper()
	out := &logBuffer{}
	log := accesslog.New(out, accesslog.Options{FlushInterval: 20 * time.Millisecond})
	cfg.Telemetry = log
	h := startProxy(t, yamlDocs, cfg, "")
	// Registered after the proxy's own cleanup, so it runs first: lines of connections the
	// shutdown closes may be dropped, which is what Close after traffic does.
	t.Cleanup(func() { log.Close() })
	return h, out
}

func staticEntry(name, host, protocol string, number int, addr string) string {
	ip, p, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: shop}
spec:
  hosts: [%s]
  ports: [{number: %d, name: p, protocol: %s}]
  resolution: STATIC
  endpoints: [{address: %s, ports: {p: %s}}]
---
`, name, host, number, protocol, ip, p)
}

func TestAClientThatLeavesMidResponseIsLoggedDC(t *testing.T) {
	t.Parallel()
	endless := endlessBackend(t)
	h, out := startLogged(t, staticEntry("endless", "endless.test", "HTTP", 80, endless), Config{Namespace: "shop"})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET http://endless.test/big HTTP/1.1\r\nHost: endless.test\r\nX-Request-Id: rid-dc\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	got := normalize(t, out.line(t, `"rid-dc"`), h.addr)
	got = regexp.MustCompile(`" 0 \d+ D`).ReplaceAllString(got, `" 0 SENT D`)
	want := `[T] "GET /big HTTP/1.1" 200 DC via_upstream - "-" 0 SENT D U "-" "-" "rid-dc" "endless.test" "` + endless +
		`" outbound|80||endless.test - PROXY CLIENT - -`
	if got != want {
		t.Errorf("line\n got %s\nwant %s", got, want)
	}
}

func TestAnHTTP2StreamHeldBackByTheConnectionCapIsLoggedUO(t *testing.T) {
	t.Parallel()
	endless := endlessBackend(t)
	h, out := startLogged(t, staticEntry("hold", "hold.test", "HTTP", 80, endless),
		Config{Namespace: "shop", HTTP: httpfwd.Limits{MaxUpstreamConns: 1, StreamIdleTimeout: time.Second}})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(id string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+h.addr+"/"+id, nil)
		req.Host = "hold.test"
		req.Header.Set("X-Request-Id", id)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	held := get("rid-hold")
	defer held.Body.Close()
	if _, err := io.ReadFull(held.Body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	over := get("rid-uo")
	io.Copy(io.Discard, over.Body)
	over.Body.Close()
	if over.StatusCode != 503 {
		t.Fatalf("status %d, want 503 from the connection cap", over.StatusCode)
	}
	got := normalize(t, out.line(t, `"rid-uo"`), h.addr)
	want := `[T] "GET /rid-uo HTTP/2" 503 UO - - "-" 0 0 D - "-" "Go-http-client/2.0" "rid-uo" "hold.test" "` + endless +
		`" outbound|80||hold.test - PROXY CLIENT - -`
	if got != want {
		t.Errorf("line\n got %s\nwant %s", got, want)
	}
}

func TestACONNECTTunnelIsLoggedWithItsExactByteCounts(t *testing.T) {
	t.Parallel()
	echo := echoServer(t).Addr().String()
	h, out := startLogged(t, staticEntry("tunnel", "tunnel.test", "TCP", 9000, echo)+
		staticEntry("deadtunnel", "deadtunnel.test", "TCP", 9000, "127.0.0.1:1"), Config{Namespace: "shop"})
	tunnel, status := h.connect(t, "tunnel.test:9000")
	if status != 200 {
		t.Fatalf("CONNECT status %d", status)
	}
	sent := bytes.Repeat([]byte("0123456789"), 1234) // 12,340 bytes each way
	go tunnel.Write(sent)
	tunnel.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(tunnel, make([]byte, len(sent))); err != nil {
		t.Fatal(err)
	}
	tunnel.Close()
	got := normalize(t, out.line(t, `"`+echo+`"`), h.addr)
	want := `[T] "- - -" 0 - - - "-" 12340 12340 D - "-" "-" "-" "-" "` + echo + `" outbound|9000||tunnel.test - PROXY CLIENT - -`
	if got != want {
		t.Errorf("tunnel line\n got %s\nwant %s", got, want)
	}

	if _, status := h.connect(t, "deadtunnel.test:9000"); status != 503 {
		t.Fatalf("CONNECT to a dead endpoint: status %d, want 503", status)
	}
	got = normalize(t, out.line(t, "outbound|9000||deadtunnel.test"), h.addr)
	want = `[T] "- - -" 0 UF - - "-" 0 0 D - "-" "-" "-" "-" "-" outbound|9000||deadtunnel.test - PROXY CLIENT - -`
	if got != want {
		t.Errorf("failed tunnel line\n got %s\nwant %s", got, want)
	}
}

func TestACapturedTLSConnectionIsLoggedWithItsSNI(t *testing.T) {
	t.Parallel()
	ca := backend.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := backend.TLS(t, "secure", ln, ca, "secure.test")
	h, out := startLogged(t, staticEntry("secure", "secure.test", "TLS", 443, be.Addr), Config{Namespace: "shop"})
	capture := h.serveCapture(t, "192.0.2.10:443")
	raw, err := net.Dial("tcp", capture)
	if err != nil {
		t.Fatal(err)
	}
	body := httpsOver(t, raw, ca, "secure.test")
	if !strings.HasPrefix(body, "secure secure.test") {
		t.Fatalf("body %q", body)
	}
	line := out.line(t, " secure.test -")
	got := normalize(t, line, h.addr)
	got = regexp.MustCompile(`"-" (\d+) (\d+) D`).ReplaceAllStringFunc(got, func(s string) string {
		var in, outb int
		fmt.Sscanf(s, `"-" %d %d D`, &in, &outb)
		if in < 100 || outb < 100 {
			t.Errorf("a TLS exchange moved %d bytes in and %d out, want a handshake's worth each way", in, outb)
		}
		return `"-" IN OUT D`
	})
	want := `[T] "- - -" 0 - - - "-" IN OUT D - "-" "-" "-" "-" "` + be.Addr + `" outbound|443||secure.test - 192.0.2.10:443 CLIENT secure.test -`
	if got != want {
		t.Errorf("line\n got %s\nwant %s", got, want)
	}
}

// TestADiscardSinkAddsNoAllocationToTheKeepAlivePath is not parallel: AllocsPerRun counts the
// whole process. The same keep-alive request through the forward proxy to a STATIC endpoint is
// measured with no Sink and with telemetry.Discard: labelling and reporting must cost nothing.
func TestADiscardSinkAddsNoAllocationToTheKeepAlivePath(t *testing.T) {
	be := rawHelloBackend(t)
	measure := func(sink telemetry.Sink) float64 {
		h := startProxy(t, staticEntry("ok", "ok.test", "HTTP", 80, be), Config{Namespace: "shop", Telemetry: sink}, "")
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		raw := []byte("GET http://ok.test/a HTTP/1.1\r\nHost: ok.test\r\nUser-Agent: t\r\n\r\n")
		body := make([]byte, 64)
		roundTrip := func() {
			c.Write(raw)
			// The backend's answer has a fixed head and a 13-byte body.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					t.Fatalf("response: %v", err)
				}
				if len(line) == 2 {
					break
				}
			}
			if _, err := io.ReadFull(br, body[:13]); err != nil {
				t.Fatalf("body: %v", err)
			}
		}
		roundTrip()
		return testing.AllocsPerRun(300, roundTrip)
	}
	without := measure(nil)
	with := measure(telemetry.Discard{})
	log := accesslog.New(io.Discard, accesslog.Options{})
	defer log.Close()
	logged := measure(log)
	t.Logf("allocations per keep-alive request through the proxy: %.2f without a Sink, %.2f with telemetry.Discard, %.2f with the access log",
		without, with, logged)
	if with > without+0.05 {
		t.Errorf("a request allocates %.2f times with a Discard sink, %.2f without", with, without)
	}
}

// rawHelloBackend answers every request on a keep-alive connection with a fixed 13-byte body,
// reading heads line by line into bufio's buffer, so that it allocates nothing per request and
// the process's allocation count is the proxy's.
func rawHelloBackend(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!")
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) == 2 {
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestATunnelClosedIdleIsLoggedDT(t *testing.T) {
	t.Parallel()
	echo := echoServer(t).Addr().String()
	h, out := startLogged(t, staticEntry("idle", "idle.test", "TCP", 9000, echo),
		Config{Namespace: "shop", TCPIdleTimeout: 300 * time.Millisecond})
	tunnel, status := h.connect(t, "idle.test:9000")
	if status != 200 {
		t.Fatalf("CONNECT status %d", status)
	}
	defer tunnel.Close()
	io.WriteString(tunnel, "ping")
	tunnel.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(tunnel, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	// Nothing more is sent: the proxy closes the tunnel once it has been idle for 300 ms.
	got := normalize(t, out.line(t, `"`+echo+`"`), h.addr)
	want := `[T] "- - -" 0 DT - - "-" 4 4 D - "-" "-" "-" "-" "` + echo + `" outbound|9000||idle.test - PROXY CLIENT - -`
	if got != want {
		t.Errorf("line\n got %s\nwant %s", got, want)
	}
}

func TestAUnixEndpointIsLoggedByItsSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "socket")
	backend.Unix(t, "unix", sock)
	h, out := startLogged(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: unix, namespace: shop}
spec:
  hosts: [example.unix.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: "unix://%s"}]
`, sock), Config{Namespace: "shop"})
	if got := rawGet(t, h.addr, "GET http://example.unix.local/u HTTP/1.1\r\nHost: example.unix.local\r\nX-Request-Id: rid-unix\r\n\r\n"); got != 200 {
		t.Fatalf("status %d", got)
	}
	got := normalize(t, out.line(t, `"rid-unix"`), h.addr)
	want := `[T] "GET /u HTTP/1.1" 200 - via_upstream - "-" 0 26 D U "-" "-" "rid-unix" "example.unix.local" "unix://` + sock +
		`" outbound|80||example.unix.local - PROXY CLIENT - -`
	if got != want {
		t.Errorf("line\n got %s\nwant %s", got, want)
	}
}
