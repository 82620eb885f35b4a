package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// originationYAML is Istio's egress TLS origination task on loopback: the application sends plain
// HTTP to port 80 of api.example.test, whose endpoint listens for TLS on targetPort, and a
// DestinationRule sets tls on port 80 with the extra fields given.
func originationYAML(backendPort int, tlsFields string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: api
spec:
  hosts: [api.example.test]
  location: MESH_EXTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
    targetPort: %d
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: api-tls
spec:
  host: api.example.test
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls:
%s`, backendPort, tlsFields)
}

// flagSink keeps the response flags of every request it is told of.
type flagSink struct {
	mu    sync.Mutex
	flags []telemetry.Flags
}

func (s *flagSink) Request(r *telemetry.Request) {
	s.mu.Lock()
	s.flags = append(s.flags, r.Flags)
	s.mu.Unlock()
}
func (s *flagSink) ConnOpened(*telemetry.Conn) {}
func (s *flagSink) ConnClosed(*telemetry.Conn) {}

func (s *flagSink) last() telemetry.Flags {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.flags) == 0 {
		return 0
	}
	return s.flags[len(s.flags)-1]
}

func TestTLSOriginationSendsPlainHTTPOverPooledTLSConnections(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "origination CA")
	cert, _, _ := pki.issue(t, "api.example.test", "api.example.test")
	be := newTLSListener(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	serveHTTP(t, be, "api", true)
	h := startProxy(t, originationYAML(be.port(), "        mode: SIMPLE\n        caCertificates: "+pki.caFile+"\n"), Config{}, "")
	want := "api sni=api.example.test client=none alpn="

	t.Run("curl -x to http://api.example.test/ reaches the HTTPS backend", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			// The Go client below makes the same request through the same proxy.
			t.Skip("no curl binary on this machine")
		}
		out, err := exec.Command(curl, "-sS", "--max-time", "10", "-x", "http://"+h.addr, "http://api.example.test/").CombinedOutput()
		if err != nil || string(out) != want {
			t.Fatalf("curl: %v, output %q, want %q", err, out, want)
		}
	})

	t.Run("100 requests from 4 clients open about as many TLS connections as the pool holds", func(t *testing.T) {
		before := be.ok.Load()
		c := h.client(nil)
		var wg sync.WaitGroup
		errs := make(chan error, 100)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					if err := getBody(c, "http://api.example.test/", want); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := be.ok.Load() - before; n < 1 || n > 8 {
			t.Fatalf("the backend completed %d TLS handshakes for 100 requests from 4 clients; want 1 to 8 (pooled)", n)
		}
		if f := h.p.Stats().TLSHandshakeFailures; f != 0 {
			t.Fatalf("TLSHandshakeFailures = %d, want 0", f)
		}
	})
}

// getBody fetches url with c and checks for 200 and body want.
func getBody(c *http.Client, url, want string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if resp.StatusCode != 200 || string(b) != want {
		return fmt.Errorf("GET %s: %d %q, want 200 %q", url, resp.StatusCode, b, want)
	}
	return nil
}

func TestTLSOriginationRefusesServersItCannotVerifyAndNeverFallsBackToPlaintext(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "trusted CA")
	other := newTestPKI(t, "other CA")
	good, _, _ := pki.issue(t, "api.example.test", "api.example.test")
	foreign, _, _ := other.issue(t, "api.example.test", "api.example.test")
	misnamed, _, _ := pki.issue(t, "other.example.test", "other.example.test")
	tests := []struct {
		name       string
		cert       tls.Certificate
		tlsFields  string
		wantStatus int
		// wantReason are parts the x-meshentry-reason must hold.
		wantReason []string
		// wantConn is whether the backend sees any connection at all.
		wantConn       bool
		wantFailCount  bool
		wantUpstreamUF bool
	}{
		{name: "a server whose certificate another CA signed is refused, naming what it presented",
			cert: foreign, tlsFields: "        mode: SIMPLE\n        caCertificates: " + pki.caFile + "\n",
			wantStatus: 503, wantReason: []string{"TLS (SIMPLE) handshake with outbound|80||api.example.test failed", "server presented SANs [api.example.test]", "unknown authority"},
			wantConn: true, wantFailCount: true, wantUpstreamUF: true},
		{name: "a server without the subjectAltName the rule lists is refused, naming both",
			cert: good, tlsFields: "        mode: SIMPLE\n        caCertificates: " + pki.caFile + "\n        subjectAltNames: [billing.example.test]\n",
			wantStatus: 503, wantReason: []string{"server presented SANs [api.example.test]", "expected one of subjectAltNames billing.example.test"},
			wantConn: true, wantFailCount: true, wantUpstreamUF: true},
		{name: "a server certificate for another name is refused when the rule lists no subjectAltNames",
			cert: misnamed, tlsFields: "        mode: SIMPLE\n        caCertificates: " + pki.caFile + "\n",
			wantStatus: 503, wantReason: []string{"server presented SANs [other.example.test]", "expected a certificate for api.example.test"},
			wantConn: true, wantFailCount: true, wantUpstreamUF: true},
		{name: "a listed subjectAltName is accepted even when it is not the SNI",
			cert: misnamed, tlsFields: "        mode: SIMPLE\n        caCertificates: " + pki.caFile + "\n        subjectAltNames: [other.example.test]\n",
			wantStatus: 200, wantConn: true},
		{name: "the rule's sni is sent and the server's certificate checked against it",
			cert: misnamed, tlsFields: "        mode: SIMPLE\n        caCertificates: " + pki.caFile + "\n        sni: other.example.test\n",
			wantStatus: 200, wantConn: true},
		{name: "insecureSkipVerify accepts a server another CA signed",
			cert: foreign, tlsFields: "        mode: SIMPLE\n        insecureSkipVerify: true\n",
			wantStatus: 200, wantConn: true},
		{name: "a caCertificates file that cannot be read refuses the route without dialling",
			cert: good, tlsFields: "        mode: SIMPLE\n        caCertificates: /nonexistent/ca.pem\n",
			wantStatus: 503, wantReason: []string{"TLS for outbound|80||api.example.test (DestinationRule default/api-tls", "/nonexistent/ca.pem"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := newTLSListener(t, &tls.Config{Certificates: []tls.Certificate{tc.cert}})
			serveHTTP(t, be, "api", true)
			sink := &flagSink{}
			h := startProxy(t, originationYAML(be.port(), tc.tlsFields), Config{Telemetry: sink}, "")
			status, body, resp := get(t, h.client(nil), "http://api.example.test/")
			if status != tc.wantStatus {
				t.Fatalf("status %d (%q), want %d", status, body, tc.wantStatus)
			}
			reason := resp.Header.Get("X-Meshentry-Reason")
			t.Logf("x-meshentry-reason: %s", reason)
			for _, part := range tc.wantReason {
				if !strings.Contains(reason, part) {
					t.Errorf("reason %q does not say %q", reason, part)
				}
			}
			if tc.wantConn {
				// The backend counts its side of a refused handshake after the client heard: poll.
				waitFor(t, func() bool { return be.ok.Load()+be.fail.Load() > 0 }, "the backend to see a connection")
			} else if got := be.ok.Load() + be.fail.Load(); got != 0 {
				t.Errorf("the backend saw %d connections; want none", got)
			}
			if tc.wantStatus == 503 && be.ok.Load() != 0 {
				t.Errorf("a refused server completed %d handshakes", be.ok.Load())
			}
			if got := h.p.Stats().TLSHandshakeFailures; (got > 0) != tc.wantFailCount {
				t.Errorf("TLSHandshakeFailures = %d, want counted: %v", got, tc.wantFailCount)
			}
			if tc.wantUpstreamUF {
				// The record is made once the response is out: poll for it.
				waitFor(t, func() bool { return sink.last()&telemetry.UpstreamConnectFailure != 0 }, "the UF response flag")
			}
		})
	}
}

func TestTLSOriginationToAnHTTP2PortOffersH2(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "h2 CA")
	cert, _, _ := pki.issue(t, "grpc.example.test", "grpc.example.test")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// net/http's own TLS server: it speaks HTTP/2 only when the client offers h2 by ALPN.
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s", r.Proto) })}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	yaml := strings.NewReplacer("api.example.test", "grpc.example.test", "protocol: HTTP", "protocol: HTTP2").
		Replace(originationYAML(ln.Addr().(*net.TCPAddr).Port, "        mode: SIMPLE\n        caCertificates: "+pki.caFile+"\n"))
	h := startProxy(t, yaml, Config{}, "")
	if status, body, _ := get(t, h.client(nil), "http://grpc.example.test/"); status != 200 || body != "HTTP/2.0" {
		t.Fatalf("got %d %q, want 200 HTTP/2.0", status, body)
	}
}

// Istio's egress TLS origination task as written: resolution DNS, no endpoints, so the host itself
// is resolved, and the pooled TLS connections follow the resolved address.
func TestTLSOriginationToADNSResolvedHostPoolsItsTLSConnections(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t, "dns CA")
	cert, _, _ := pki.issue(t, "api.example.test", "api.example.test")
	be := newTLSListener(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	serveHTTP(t, be, "api", true)
	dns := dnstest.Start(t)
	dns.Set("api.example.test", 30, "127.0.0.1")
	yaml := strings.NewReplacer("resolution: STATIC\n  endpoints:\n  - address: 127.0.0.1\n", "resolution: DNS\n").
		Replace(originationYAML(be.port(), "        mode: SIMPLE\n        caCertificates: "+pki.caFile+"\n"))
	h := startProxy(t, yaml, Config{}, dns.Addr)
	c := h.client(nil)
	for i := 0; i < 20; i++ {
		if err := getBody(c, "http://api.example.test/", "api sni=api.example.test client=none alpn="); err != nil {
			t.Fatal(err)
		}
	}
	if n := be.ok.Load(); n != 1 {
		t.Fatalf("the backend completed %d handshakes for 20 sequential requests; want 1 (pooled)", n)
	}
	var counted uint64
	for _, cl := range h.p.Clusters() {
		for _, ep := range cl.Endpoints {
			if cl.Name == "outbound|80||api.example.test" {
				counted += ep.Counts.RqTotal
			}
		}
	}
	if counted != 20 {
		t.Fatalf("the cluster's endpoints count %d requests, want 20 (the TLS pool key must still name the endpoint)", counted)
	}
}
