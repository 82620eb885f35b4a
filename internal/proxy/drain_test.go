package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/resolve"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// pipeCases open a byte pipe to an echo server, by CONNECT and by capture, with the address a
// new client of the same kind would dial.
func pipeCases() []struct {
	name string
	open func(t *testing.T, h *harness) (net.Conn, string)
} {
	return []struct {
		name string
		open func(t *testing.T, h *harness) (net.Conn, string)
	}{
		{name: "a CONNECT tunnel", open: func(t *testing.T, h *harness) (net.Conn, string) {
			c, status := h.connect(t, "echo.internal:7000")
			if status != 200 {
				t.Fatalf("CONNECT = %d", status)
			}
			t.Cleanup(func() { c.Close() })
			return c, h.addr
		}},
		{name: "a captured TCP connection", open: func(t *testing.T, h *harness) (net.Conn, string) {
			addr := h.serveCapture(t, "10.99.0.1:7000")
			return dial(t, addr), addr
		}},
	}
}

// shutdownIn runs Shutdown with the given drain timeout in the background; the channel gets its
// error once it returned.
func shutdownIn(p *Proxy, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done <- p.Shutdown(ctx)
	}()
	return done
}

// waitRefused polls until a dial to addr fails, as it must once the drain closed the listener.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts 3s into the drain")
		}
	}
}

// isClosed reports whether the peer closed c within a wide margin.
func isClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeoutErr(err)
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestDrainLetsPipesRunUntilTheDrainTimeout(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo.Addr().String())
	const drainTimeout = 1500 * time.Millisecond
	for _, tc := range pipeCases() {
		t.Run(tc.name+" keeps working while draining and is closed at the drain timeout", func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, echoEntry(port), Config{}, "")
			c, addr := tc.open(t, h)
			roundTrip(t, c, []byte("before the drain"))
			start := time.Now()
			done := shutdownIn(h.p, drainTimeout)
			waitRefused(t, addr)
			roundTrip(t, c, []byte("during the drain"))
			var err error
			select {
			case err = <-done:
			case <-time.After(drainTimeout + 5*time.Second):
				t.Fatal("Shutdown outlived its drain timeout by 5s")
			}
			if d := time.Since(start); d < drainTimeout-50*time.Millisecond {
				t.Errorf("Shutdown returned after %v, before the drain timeout %v", d, drainTimeout)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown returned %v, want the drain timeout's error", err)
			}
			if !isClosed(c) {
				t.Error("the pipe is still open after the drain timeout")
			}
			if n := h.p.DrainClosed(); n != 2 {
				t.Errorf("DrainClosed = %d, want 2 (the client and its upstream)", n)
			}
		})
	}
}

func TestDrainReturnsOnceThePipesEndByThemselves(t *testing.T) {
	t.Parallel()
	echo := echoServer(t)
	_, port, _ := net.SplitHostPort(echo.Addr().String())
	const drainTimeout = 20 * time.Second
	for _, tc := range pipeCases() {
		t.Run(tc.name+" that the client closes lets Shutdown return early", func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, echoEntry(port), Config{}, "")
			c, addr := tc.open(t, h)
			// A connection still in the listener's backlog when the drain closes it is lost, as
			// with any server; one round trip first makes sure the pipe was accepted.
			roundTrip(t, c, []byte("before the drain"))
			start := time.Now()
			done := shutdownIn(h.p, drainTimeout)
			waitRefused(t, addr)
			roundTrip(t, c, []byte("during the drain"))
			c.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown still waits 10s after the only pipe ended")
			}
			if d := time.Since(start); d >= drainTimeout {
				t.Errorf("Shutdown took %v, the whole drain timeout", d)
			}
			if n := h.p.DrainClosed(); n != 0 {
				t.Errorf("DrainClosed = %d after a clean drain", n)
			}
		})
	}
}

// A CONNECT still resolving its upstream may go on during the drain, but not past its end.
func TestDrainTimeoutBoundsATunnelStillDialling(t *testing.T) {
	t.Parallel()
	silentDNS, err := net.ListenPacket("udp", "127.0.0.1:0") // answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silentDNS.Close()
	r, err := resolve.New(resolve.Config{Server: silentDNS.LocalAddr().String(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: slow}
spec:
  hosts: [slow.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
`, Config{Resolver: r}, "")
	c := dial(t, h.addr)
	fmt.Fprintf(c, "CONNECT slow.example.com:443 HTTP/1.1\r\nHost: slow.example.com:443\r\n\r\n")
	time.Sleep(200 * time.Millisecond) // the proxy is now waiting on DNS
	start := time.Now()
	err = <-shutdownIn(h.p, time.Second)
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Shutdown took %v with a 1s drain timeout while a tunnel was resolving its upstream", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown returned %v, want the drain timeout's error", err)
	}
}

func TestDrainFinishesHTTPRequestsInFlight(t *testing.T) {
	t.Parallel()
	got, release := make(chan struct{}, 1), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			got <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "done "+r.URL.Path)
	})}
	go be.Serve(ln)
	defer be.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	h := startProxy(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: `+port+`}}]
`, Config{}, "")
	idle := dial(t, h.addr)
	idleBR := bufio.NewReader(idle)
	fmt.Fprint(idle, "GET http://web.internal/fast HTTP/1.1\r\nHost: web.internal\r\n\r\n")
	resp, err := http.ReadResponse(idleBR, nil)
	if err != nil || resp.StatusCode != 200 || resp.Close {
		t.Fatalf("before the drain: %v, %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	slow := dial(t, h.addr)
	fmt.Fprint(slow, "GET http://web.internal/slow HTTP/1.1\r\nHost: web.internal\r\n\r\n")
	<-got
	done := shutdownIn(h.p, 20*time.Second)
	waitRefused(t, h.addr)
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := idleBR.ReadByte(); err == nil || isTimeoutErr(err) {
		t.Errorf("the idle keep-alive connection was not closed: %v", err)
	}
	close(release)
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	slowBR := bufio.NewReader(slow)
	resp, err = http.ReadResponse(slowBR, nil)
	if err != nil {
		t.Fatalf("the request in flight failed: %v", err)
	}
	var body strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&body)
	if resp.StatusCode != 200 || body.String() != "done /slow" || !resp.Close {
		t.Errorf("got %d %q close=%v, want 200 \"done /slow\" with Connection: close", resp.StatusCode, body.String(), resp.Close)
	}
	if _, err := slowBR.ReadByte(); err == nil || isTimeoutErr(err) {
		t.Errorf("the connection stayed open after its response: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the request finished")
	}
}

func TestDrainServesACapturedConnectionAcceptedJustBefore(t *testing.T) {
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
	// The capture loop reports each connection it took, so the drain can begin right after.
	accepted := make(chan struct{}, 8)
	dst := netip.MustParseAddrPort("10.99.0.80:80")
	h.p.origDst = func(*net.TCPConn) (netip.AddrPort, error) {
		select {
		case accepted <- struct{}{}:
		default:
		}
		return dst, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go h.p.ServeCapture(ln)
	c := dial(t, ln.Addr().String())
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the capture listener did not take the connection")
	}
	done := shutdownIn(h.p, 20*time.Second)
	for deadline := time.Now().Add(3 * time.Second); !h.p.capture.Draining(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the capture engine is not draining 3s after Shutdown began")
		}
	}
	fmt.Fprint(c, "GET /late HTTP/1.1\r\nHost: web.internal\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the request sent after the drain began failed: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "web ") || !resp.Close {
		t.Errorf("got %d %q close=%v, want 200 from web with Connection: close", resp.StatusCode, body, resp.Close)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the captured request")
	}
}
