package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// linePattern turns an expected access-log line into a pattern: {T} is a start time as Envoy
// prints it, {N} any number, {ADDR} any ip:port; the rest must match byte for byte.
func linePattern(want string) *regexp.Regexp {
	p := regexp.QuoteMeta(want)
	p = strings.NewReplacer(`\{T\}`, `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`, `\{N\}`, `\d+`, `\{ADDR\}`, `[0-9.]+:\d+`).Replace(p)
	return regexp.MustCompile("^" + p + "$")
}

// waitForLine waits until the access log at path has a line matching want.
func waitForLine(t *testing.T, path, want string) {
	t.Helper()
	re := linePattern(want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if re.MatchString(l) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access-log line like\n%s\nwithin 10s; the log:\n%s", want, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCapturedConnectionsAreAccessLogged runs `meshentry run --capture-listen --access-log FILE`
// behind a real iptables REDIRECT: a TLS connection routed by SNI is logged with its SNI and
// cluster, an opaque TCP one with its exact bytes, one nothing declares as NR in the blackhole
// cluster, and a captured HTTP request like a forward-proxy one.
func TestCapturedConnectionsAreAccessLogged(t *testing.T) {
	ns := netns.New(t, "10.214.0.10/24", "10.214.0.200/24")
	ca := backend.NewCA(t)
	listen := ns.MustListen
	secure := backend.TLS(t, "secure", listen("127.0.0.1:0"), ca, "secure.example.com")
	web := backend.Serve(t, "web", listen("127.0.0.1:0"))
	echo := listen("127.0.0.1:0")
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	config := fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: shop}
spec:
  hosts: [secure.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: %s}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db.internal]
  addresses: [10.214.0.128/25]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %s}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: shop}
spec:
  hosts: [web.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %s}}]
`, port(secure.Addr), port(echo.Addr().String()), port(web.Addr))
	dir, err := os.MkdirTemp("", "meshentry-accesslog-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777) // the proxy runs as its own user and creates the log here
	logPath := filepath.Join(dir, "access.log")
	startCaptured(t, ns, "10.214.0.0/24", config, "--namespace", "shop", "--access-log", logPath)

	t.Run("a TLS connection is logged with its SNI and cluster", func(t *testing.T) {
		tc := tls.Client(nsDial(t, ns, "10.214.0.10:443"), backend.TLSClient(ca, "secure.example.com"))
		fmt.Fprintf(tc, "GET /tls HTTP/1.1\r\nHost: secure.example.com\r\nConnection: close\r\n\r\n")
		if b, err := io.ReadAll(tc); err != nil || !strings.Contains(string(b), "secure secure.example.com /tls") {
			t.Fatalf("HTTPS through capture: %q, %v", b, err)
		}
		tc.Close()
		waitForLine(t, logPath, `[{T}] "- - -" 0 - - - "-" {N} {N} {N} - "-" "-" "-" "-" "`+secure.Addr+
			`" outbound|443||secure.example.com - 10.214.0.10:443 {ADDR} secure.example.com -`)
	})
	t.Run("an opaque TCP connection is logged with its exact bytes", func(t *testing.T) {
		c := nsDial(t, ns, "10.214.0.200:5432")
		msg := strings.Repeat("select 1;", 111) // 999 bytes each way
		io.WriteString(c, msg)
		c.(*net.TCPConn).CloseWrite()
		if b, err := io.ReadAll(c); err != nil || string(b) != msg {
			t.Fatalf("echo of %d bytes: got %d, %v", len(msg), len(b), err)
		}
		c.Close()
		waitForLine(t, logPath, `[{T}] "- - -" 0 - - - "-" 999 999 {N} - "-" "-" "-" "-" "`+echo.Addr().String()+
			`" outbound|5432||db.internal - 10.214.0.200:5432 {ADDR} - -`)
	})
	t.Run("a connection nothing declares is logged NR in the blackhole cluster", func(t *testing.T) {
		c := nsDial(t, ns, "10.214.0.10:6000")
		c.Write([]byte("anyone?"))
		io.ReadAll(c)
		c.Close()
		waitForLine(t, logPath, `[{T}] "- - -" 0 NR - - "-" 0 0 {N} - "-" "-" "-" "-" "-" BlackHoleCluster - 10.214.0.10:6000 {ADDR} - -`)
	})
	t.Run("a captured HTTP request is logged like a forwarded one", func(t *testing.T) {
		c := nsDial(t, ns, "10.214.0.10:80")
		fmt.Fprintf(c, "GET /page HTTP/1.1\r\nHost: web.example.com\r\nUser-Agent: capture/1\r\nX-Request-Id: rid-capture\r\nConnection: close\r\n\r\n")
		io.ReadAll(c)
		c.Close()
		waitForLine(t, logPath, `[{T}] "GET /page HTTP/1.1" 200 - via_upstream - "-" 0 25 {N} {N} "-" "capture/1" "rid-capture" "web.example.com" "`+
			web.Addr+`" outbound|80||web.example.com - 10.214.0.10:80 {ADDR} - -`)
	})
}
