package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// greeter is a server-first backend: it says its greeting as soon as a client connects, as SMTP
// and MySQL servers do, and waits for the client to hang up.
func greeter(t *testing.T, greeting string) net.Listener {
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
				c.Write([]byte(greeting))
				c.Read(make([]byte, 1))
			}()
		}
	}()
	return ln
}

// greetingDelay is the median time from dialling addr to reading the greeting line, over 5 tries.
func greetingDelay(t *testing.T, addr, greeting string) time.Duration {
	t.Helper()
	var took []time.Duration
	for range 5 {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		took = append(took, time.Since(start))
		c.Close()
		if err != nil || line != greeting {
			t.Fatalf("greeting via %s = %q, %v", addr, line, err)
		}
	}
	slices.Sort(took)
	return took[len(took)/2]
}

func TestServerFirstProtocolsThroughCapture(t *testing.T) {
	t.Parallel()
	const greeting = "220 mail.internal ESMTP ready\r\n"
	server := greeter(t, greeting)
	_, port, _ := net.SplitHostPort(server.Addr().String())
	entry := func(protocol string) string {
		return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mail}
spec:
  hosts: [mail.internal]
  addresses: [10.99.0.25]
  ports: [{number: 25, name: smtp` + protocol + `}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {smtp: ` + port + `}}]
`
	}
	const sniffTimeout = 200 * time.Millisecond
	tests := []struct {
		name     string
		protocol string
		// sniffed says whether the proxy waits for the client before it connects upstream.
		sniffed bool
	}{
		{name: "passes a greeting through a port declared TCP within 5 ms of direct", protocol: ", protocol: TCP"},
		{name: "passes a greeting through a port declared MYSQL within 5 ms of direct", protocol: ", protocol: MYSQL"},
		{name: "waits for the sniff on a port with no declared protocol", sniffed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, entry(tc.protocol), Config{SniffTimeout: sniffTimeout}, "")
			capture := h.serveCapture(t, "10.99.0.25:25")
			direct := greetingDelay(t, server.Addr().String(), greeting)
			via := greetingDelay(t, capture, greeting)
			t.Logf("greeting: direct %v, through capture %v", direct, via)
			if tc.sniffed {
				if via < sniffTimeout {
					t.Fatalf("greeting through a sniffed port took %v, want at least the %v sniff", via, sniffTimeout)
				}
				return
			}
			if via > direct+5*time.Millisecond {
				t.Fatalf("greeting through capture took %v, direct %v: more than 5 ms slower", via, direct)
			}
		})
	}
}

func TestCapturedHTTPOnADeclaredHTTPPortIsRoutedByHost(t *testing.T) {
	t.Parallel()
	web := backend.HTTP(t, "web", "127.0.0.1:0")
	h := startProxy(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.internal]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`, web.Port()), Config{}, "")
	c := dial(t, h.serveCapture(t, "10.99.0.80:80"))
	fmt.Fprintf(c, "GET /declared HTTP/1.1\r\nHost: web.internal\r\nConnection: close\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "web ") {
		t.Fatalf("captured GET = %d %q, want 200 from web", resp.StatusCode, body)
	}
}
