package httpfwd

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// bodyHashBackend answers each request with the SHA-256 of its body, and reports on heads each
// request head it read before it reads the body.
func bodyHashBackend(t *testing.T, heads chan<- struct{}) string {
	t.Helper()
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			heads <- struct{}{}
			h := sha256.New()
			if _, err := io.Copy(h, req.Body); err != nil {
				return
			}
			sum := hex.EncodeToString(h.Sum(nil))
			fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(sum), sum)
		}
	}).addr()
}

func TestRequestBodyTopUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body int // bytes of body
		// later is how many of the body's last bytes the client holds back until the
		// upstream has the head; 0 sends head and body in one write.
		later        int
		wantStreamed uint64
	}{
		{name: "a body within the arrival room leaves with the head", body: 200, wantStreamed: 0},
		{name: "a 4 KiB body sent with its head leaves with the head", body: 4096, wantStreamed: 0},
		{name: "a body that fills the client reader exactly leaves with the head", body: readSize, wantStreamed: 0},
		{name: "a body whose tail comes later is streamed and arrives whole", body: 4096, later: 1024, wantStreamed: 1},
		{name: "a body whose tail comes later than the arrival room is streamed", body: 600, later: 100, wantStreamed: 1},
		{name: "a body larger than the client reader is streamed", body: 3 * readSize, wantStreamed: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			heads := make(chan struct{}, 4)
			srv := &Server{Router: staticRouter(bodyHashBackend(t, heads))}
			c := dial(t, startProxy(t, srv))
			body := strings.Repeat("0123456789abcdef", tt.body/16+1)[:tt.body]
			want := sha256.Sum256([]byte(body))
			// The head alone is under 100 bytes, so the arrival room always gets some body.
			msg := fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: up.test\r\nContent-Length: %d\r\n\r\n%s", tt.body, body)
			c.send(msg[:len(msg)-tt.later])
			if tt.later > 0 {
				select {
				case <-heads:
				case <-time.After(5 * time.Second):
					t.Fatal("the upstream did not get the head while the body was incomplete")
				}
				c.send(msg[len(msg)-tt.later:])
			}
			resp := c.read("POST")
			if resp.StatusCode != 200 || resp.body != hex.EncodeToString(want[:]) {
				t.Fatalf("got %d %q, want 200 with the body's hash %x", resp.StatusCode, resp.body, want)
			}
			if got := srv.Stats().BodiesStreamed; got != tt.wantStreamed {
				t.Errorf("BodiesStreamed = %d, want %d", got, tt.wantStreamed)
			}
			// The connection serves on: a second request on it is answered alike.
			c.send("POST /again HTTP/1.1\r\nHost: up.test\r\nContent-Length: 3\r\n\r\nabc")
			if resp := c.read("POST"); resp.StatusCode != 200 {
				t.Errorf("second request: %d", resp.StatusCode)
			}
		})
	}
}

func TestPostKeepAliveAllocatesNothing(t *testing.T) {
	raw := "POST /upload HTTP/1.1\r\nHost: bench.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n" + strings.Repeat("x", 4096)
	if n := keepAliveAllocs(t, &Server{Router: staticRouter(benchBackend(t))}, raw); n != 0 {
		t.Errorf("a keep-alive POST of 4 KiB allocates %v times per request, want 0", n)
	}
}
