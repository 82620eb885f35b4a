package proxy

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

// Error answers carried the resolver's text and the endpoints' addresses to the client, which
// describe the inside of the mesh; they must name at most the host and cluster.
func TestErrorAnswersRevealNoEndpointOrResolverDetail(t *testing.T) {
	t.Parallel()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	dns := dnstest.Start(t)
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: unresolvable}
spec:
  hosts: [gone.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints: [{address: nowhere.internal.example}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dead}
spec:
  hosts: [dead.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: %d}}]
`, deadPort), Config{}, dns.Addr)
	leaks := []string{"127.0.0.1", "nowhere.internal", "resolve", "refused", "NXDOMAIN", "not found", "dial"}
	check := func(t *testing.T, what, text string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(text, l) {
				t.Fatalf("%s reveals %q: %q", what, l, text)
			}
		}
	}
	t.Run("answers an unresolvable DNS endpoint with a generic 503", func(t *testing.T) {
		status, body, resp := get(t, h.client(nil), "http://gone.example.com/")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "outbound|80||gone.example.com") {
			t.Fatalf("got %d %q", status, body)
		}
		check(t, "body", body)
		check(t, "reason", resp.Header.Get("X-Meshentry-Reason"))
	})
	t.Run("answers a CONNECT whose endpoint refuses with a generic 503", func(t *testing.T) {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "CONNECT dead.example.com:443 HTTP/1.1\r\nHost: dead.example.com:443\r\n\r\n")
		raw, _ := io.ReadAll(c)
		if !bytes.HasPrefix(raw, []byte("HTTP/1.1 503")) || !bytes.Contains(raw, []byte("outbound|443||dead.example.com")) {
			t.Fatalf("got %q", raw)
		}
		check(t, "answer", string(raw))
	})
}

// A client could make the proxy log one line per refused request, as fast as it could send them.
func TestRefusalsAreLoggedAtABoundedRate(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: known}
spec:
  hosts: [known.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
`, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, "")
	const n = 100
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reqs strings.Builder
	for i := 0; i < n; i++ {
		closing := ""
		if i == n-1 {
			closing = "Connection: close\r\n"
		}
		fmt.Fprintf(&reqs, "GET http://refused-%d.example.org/ HTTP/1.1\r\nHost: refused-%d.example.org\r\n%s\r\n", i, i, closing)
	}
	if _, err := io.WriteString(c, reqs.String()); err != nil {
		t.Fatal(err)
	}
	// The last request closes the connection once answered, after all the others.
	raw, _ := io.ReadAll(c)
	if got := strings.Count(string(raw), "HTTP/1.1 502"); got != n {
		t.Fatalf("%d of %d requests refused with 502", got, n)
	}
	lines := strings.Count(logs.String(), "msg=refused")
	if lines > 25 {
		t.Fatalf("%d refusals gave %d log lines, want at most the burst of 20 (and a few refilled)", n, lines)
	}
	if got := h.p.SecurityStats(); got.Refused != n || got.LogsSuppressed != uint64(n-lines) {
		t.Fatalf("stats %+v, want Refused %d and %d suppressed", got, n, n-lines)
	}
	// No refusal follows the flood, so the summary comes from the timer, a second after the drops.
	want := fmt.Sprintf("suppressed %d refusals", n-lines)
	deadline := time.Now().Add(3 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q line in the log:\n%s", want, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
