package admin

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// serve runs NewServer(…, timeouts) on 127.0.0.1:0 until the test ends and returns its address.
func serve(t *testing.T, timeouts Timeouts) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(Config{}, timeouts)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestServerClosesConnectionsThatLinger(t *testing.T) {
	t.Parallel()
	const limit = 150 * time.Millisecond
	tests := []struct {
		name     string
		timeouts Timeouts
		// linger does what the client does before it stalls.
		linger func(t *testing.T, c net.Conn)
	}{
		{
			name:     "closes a keep-alive connection idle for the idle timeout",
			timeouts: Timeouts{Idle: limit},
			linger: func(t *testing.T, c net.Conn) {
				io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("/healthz: %v", err)
				}
				io.Copy(io.Discard, resp.Body)
			},
		},
		{
			name:     "closes a connection whose request head stalls",
			timeouts: Timeouts{ReadHeader: limit},
			linger:   func(t *testing.T, c net.Conn) { io.WriteString(c, "GET /ready HTTP/1.1\r\n") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", serve(t, tc.timeouts))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.linger(t, c)
			start := time.Now()
			c.SetReadDeadline(time.Now().Add(limit + 3*time.Second))
			_, err = io.Copy(io.Discard, c)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection still open after %v, want closed after about %v", time.Since(start), limit)
			}
		})
	}
}

func TestNewServerSetsEveryTimeout(t *testing.T) {
	t.Parallel()
	srv := NewServer(Config{}, Timeouts{Read: time.Second})
	if srv.ReadTimeout != time.Second {
		t.Errorf("ReadTimeout = %v, want the 1s asked for", srv.ReadTimeout)
	}
	if srv.ReadHeaderTimeout <= 0 || srv.WriteTimeout <= 30*time.Second || srv.IdleTimeout <= 0 {
		t.Errorf("timeouts header %v write %v idle %v: want all set, write above pprof's 30 s profile",
			srv.ReadHeaderTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}
