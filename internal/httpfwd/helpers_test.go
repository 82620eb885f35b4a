package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/gopool"
)

func TestMain(m *testing.M) {
	// The process's goroutine pool keeps idle goroutines for the next connection.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(gopool.WaitingFunction))
}

// listen binds a loopback listener that is closed when the test ends.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// backend is an upstream HTTP server counting the connections it accepted.
type backend struct {
	*httptest.Server
	conns atomic.Int64
}

func (b *backend) addr() string { return b.Listener.Addr().String() }

// startBackend runs handler on a real loopback server.
func startBackend(t testing.TB, handler http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{Server: httptest.NewUnstartedServer(handler)}
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

// untilTestEnds returns a wait for handlers that must stall: it returns when the test ends or
// the request is cancelled, whichever comes first.
func untilTestEnds(t testing.TB) func(r *http.Request) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
}

// rawBackend serves each accepted connection with fn, for upstreams that misbehave on purpose.
type rawBackend struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func startRawBackend(t testing.TB, fn func(nc net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	return startRawBackendOn(t, listen(t), fn)
}

// startRawBackendOn is startRawBackend on a listener of the caller's choice, a unix socket say.
func startRawBackendOn(t testing.TB, ln net.Listener, fn func(nc net.Conn, br *bufio.Reader)) *rawBackend {
	t.Helper()
	b := &rawBackend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			nc, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.conns.Add(1)
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer nc.Close()
				fn(nc, bufio.NewReader(nc))
			}()
		}
	}()
	t.Cleanup(func() {
		b.ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

// readRawRequest reads one request head and a Content-Length body, if any.
func readRawRequest(br *bufio.Reader) (*http.Request, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, req.Body)
	return req, err
}

// staticRouter routes every request to one address.
func staticRouter(addr string) Router {
	return RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
		return Upstream{Addr: addr}, nil
	})
}

// startProxy serves srv on a loopback listener and returns its address.
func startProxy(t testing.TB, srv *Server) string {
	t.Helper()
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		srv.serveGroup.Wait()
	})
	return ln.Addr().String()
}

// client is a raw HTTP/1.x client connection, so tests control every byte sent.
type client struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write request: %v", err)
	}
}

// response is a read response with its body.
type response struct {
	*http.Response
	body string
}

// read reads one response to a request with the given method.
func (c *client) read(method string) response {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read response body: %v", err)
	}
	return response{Response: resp, body: string(b)}
}

// closed reports whether the proxy closed the connection (after any pending response).
func (c *client) closed() bool {
	c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.br.ReadByte()
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || err != nil && strings.Contains(err.Error(), "reset")
}

// roundTrip sends raw and reads the response.
func (c *client) roundTrip(raw string) response {
	c.t.Helper()
	c.send(raw)
	method, _, _ := strings.Cut(raw, " ")
	return c.read(method)
}

// withTimeout returns a context for one test step.
func withTimeout(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// keepAliveAllocs serves srv and returns the allocations of the whole process per keep-alive
// round trip of raw through it, answered by benchBackend. AllocsPerRun counts every goroutine,
// so its callers are not parallel.
func keepAliveAllocs(t *testing.T, srv *Server, raw string) float64 {
	t.Helper()
	nc, err := net.Dial("tcp", startProxy(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	req := []byte(raw)
	var head []byte
	var resp responseHead
	return testing.AllocsPerRun(500, func() {
		nc.Write(req)
		if head, err = readHead(br, head, 64<<10); err != nil || resp.parse(head) != nil {
			t.Fatalf("response: %v", err)
		}
		br.Discard(int(resp.length))
	})
}
