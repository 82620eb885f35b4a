package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/dnstest"
	"github.com/meshentry/meshentry/internal/testutil/netns"
)

// proxyUID is the user the captured proxy runs as; iptables leaves its own connections alone, the
// way Istio's init container exempts the sidecar's UID.
const proxyUID = "1337"

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// binary builds meshentry once into a folder any user can read, for running it in a namespace.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshentry-bin-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "meshentry")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// TestTransparentCapture runs `meshentry run --capture-listen` inside a network namespace whose
// iptables REDIRECT every TCP connection to 10.213.0.0/24 (except the proxy's own) to it, then
// connects as an application would: TLS routed by SNI, HTTP by Host, TCP by CIDR, NONE to the
// original destination, and unknown destinations refused.
func TestTransparentCapture(t *testing.T) {
	ns := netns.New(t, "10.213.0.10/24", "10.213.0.200/24")
	// Upstreams inside the namespace, on its loopback.
	ca := backend.NewCA(t)
	listen := ns.MustListen
	sniBackend := backend.TLS(t, "sni-backend", listen("127.0.0.1:0"), ca, "api.dropboxapi.com", "www.googleapis.com")
	httpBackend := backend.Serve(t, "http-backend", listen("127.0.0.1:0"))
	// The original destination itself, for resolution NONE.
	backend.TLS(t, "original", listen("10.213.0.10:443"), ca, "en.wikipedia.org")
	tcpEcho := listen("127.0.0.1:0")
	go func() {
		for {
			c, err := tcpEcho.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	// A server-first protocol: the server speaks as soon as the connection opens, as SMTP does.
	greeter := listen("127.0.0.1:0")
	go func() {
		for {
			c, err := greeter.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 greeter ready\r\n"))
			c.Close()
		}
	}()
	var dns *dnstest.Server
	if err := ns.Do(func() error {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		dns = dnstest.StartOn(t, pc)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dns.Set("api.dropboxapi.com", 5, "127.0.0.1")
	dns.Set("www.googleapis.com", 5, "127.0.0.1")

	port := func(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
	config := fmt.Sprintf(`
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external-svc-https}
spec:
  hosts: [api.dropboxapi.com, www.googleapis.com]
  ports: [{number: 443, name: https, protocol: TLS, targetPort: %s}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: external-svc-redirect}
spec:
  hosts: ["*.wikipedia.org"]
  ports: [{number: 443, name: https, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %s}}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: mongocluster}
spec:
  hosts: [mymongodb.somedomain]
  addresses: [10.213.0.128/25]
  ports: [{number: 27018, name: mongodb, protocol: MONGO}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {mongodb: %s}}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: opaque}
spec:
  hosts: [opaque.internal]
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: %s}}]
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: smtp}
spec:
  hosts: [smtp.internal]
  ports: [{number: 2525, name: smtp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {smtp: %s}}]
`, port(sniBackend.Addr), port(httpBackend.Addr), port(tcpEcho.Addr().String()), port(tcpEcho.Addr().String()), port(greeter.Addr().String()))
	cmd := startCaptured(t, ns, "10.213.0.0/24", config, "--dns-server", dns.Addr)

	for _, host := range []string{"api.dropboxapi.com", "www.googleapis.com"} {
		t.Run("routes TLS for "+host+" by SNI to its DNS-resolved endpoint", func(t *testing.T) {
			body, err := nsHTTPSGet(t, ns, ca, "10.213.0.10:443", host, "/captured")
			if err != nil || body != "sni-backend "+host+" /captured" {
				t.Fatalf("got %q, %v", body, err)
			}
		})
	}
	t.Run("sends resolution NONE to the original destination", func(t *testing.T) {
		body, err := nsHTTPSGet(t, ns, ca, "10.213.0.10:443", "en.wikipedia.org", "/captured")
		if err != nil || body != "original en.wikipedia.org /captured" {
			t.Fatalf("got %q, %v", body, err)
		}
	})
	t.Run("closes TLS whose SNI no ServiceEntry declares", func(t *testing.T) {
		if body, err := nsHTTPSGet(t, ns, ca, "10.213.0.10:443", "www.example.org", "/captured"); err == nil {
			t.Fatalf("handshake succeeded: %q", body)
		}
	})
	t.Run("routes plain HTTP by Host, request by request on one connection", func(t *testing.T) {
		c := nsDial(t, ns, "10.213.0.10:80")
		defer c.Close()
		br := bufio.NewReader(c)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(c, "GET /n%d HTTP/1.1\r\nHost: web.example.com\r\n\r\n", i)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := fmt.Sprintf("http-backend web.example.com /n%d", i); string(b) != want {
				t.Fatalf("got %q, want %q", b, want)
			}
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: unknown.example.com\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 502 {
			t.Fatalf("unknown Host: %v %v", resp, err)
		}
	})
	t.Run("routes opaque TCP by the destination's CIDR", func(t *testing.T) {
		c := nsDial(t, ns, "10.213.0.200:27018")
		defer c.Close()
		if _, err := c.Write([]byte("hello mongo")); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "hello mongo" {
			t.Fatalf("echo %q, %v", b, err)
		}
	})
	t.Run("carries HTTP to a TCP port as opaque bytes", func(t *testing.T) {
		c := nsDial(t, ns, "10.213.0.10:9000")
		defer c.Close()
		req := "GET /not-parsed HTTP/1.1\r\nHost: whatever.example.com\r\n\r\n"
		c.Write([]byte(req))
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil || string(b) != req {
			t.Fatalf("echo %q, %v; want the request byte for byte", b, err)
		}
	})
	t.Run("passes a server-first greeting on a port declared TCP within 5 ms of direct", func(t *testing.T) {
		greet := func(addr string) time.Duration {
			start := time.Now()
			c := nsDial(t, ns, addr)
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || line != "220 greeter ready\r\n" {
				t.Fatalf("greeting from %s: %q, %v", addr, line, err)
			}
			return time.Since(start)
		}
		// The median of five, as one slow scheduling on a loaded machine is not the proxy's doing.
		median := func(addr string) time.Duration {
			var d []time.Duration
			for range 5 {
				d = append(d, greet(addr))
			}
			slices.Sort(d)
			return d[2]
		}
		direct, captured := median(greeter.Addr().String()), median("10.213.0.10:2525")
		t.Logf("greeting: direct %v, through capture %v", direct, captured)
		if captured > direct+5*time.Millisecond {
			t.Fatalf("greeting through capture took %v, direct %v", captured, direct)
		}
	})
	t.Run("closes TCP to an address no ServiceEntry covers", func(t *testing.T) {
		c := nsDial(t, ns, "10.213.0.10:27018")
		defer c.Close()
		c.Write([]byte("anyone?"))
		b, _ := io.ReadAll(c)
		if len(b) != 0 {
			t.Fatalf("got %q from a refused destination", b)
		}
	})
	// Last, as it stops the proxy: a captured HTTP request in flight when SIGTERM arrives still
	// gets its answer.
	t.Run("finishes a captured HTTP request in flight when told to stop", func(t *testing.T) {
		c := nsDial(t, ns, "10.213.0.10:80")
		defer c.Close()
		fmt.Fprintf(c, "GET /slow?delay=700ms HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		time.Sleep(200 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer after SIGTERM: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "http-backend web.example.com /slow?delay=700ms" {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	})
}
