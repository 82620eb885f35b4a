package httpfwd

import (
	"bufio"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// A pooled connection taken again within a millisecond was once not peeked, to save a system call. An
// upstream that sends unasked bytes right after its answer must still not have them read as the
// answer to the next request, which may be another client's: the reuse here comes well within a
// millisecond of the unasked bytes arriving.
func TestPoolDropsAFreshConnectionOnWhichBytesArrived(t *testing.T) {
	t.Parallel()
	injected := make(chan struct{})
	goInject := make(chan struct{})
	var conns atomic.Int32
	be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		inject := conns.Add(1) == 1 // only the first connection sends unasked bytes
		for {
			if _, err := readRawRequest(br); err != nil {
				return
			}
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
			if inject {
				inject = false
				<-goInject
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nINJECTED")
				close(injected)
			}
		}
	})
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	c := dial(t, addr)
	request := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	if resp := c.roundTrip(request); resp.body != "fresh" {
		t.Fatalf("first request: %d %q", resp.StatusCode, resp.body)
	}
	close(goInject)
	select {
	case <-injected:
	case <-time.After(5 * time.Second):
		t.Fatal("the backend never sent its unasked bytes")
	}
	time.Sleep(50 * time.Microsecond) // loopback delivers at once; this leaves the reuse fresh
	if resp := c.roundTrip(request); resp.body != "fresh" {
		t.Fatalf("second request got %d %q: the unasked bytes were read as its answer", resp.StatusCode, resp.body)
	}
}
