package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// upgradeBackend answers an upgrade with 101 and then hands the connection to fn.
func upgradeBackend(t *testing.T, fn func(nc net.Conn, br *bufio.Reader)) *rawBackend {
	return startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		fn(nc, br)
	})
}

// upgradeThrough opens an upgraded connection through a proxy with the given idle timeout.
func upgradeThrough(t *testing.T, be *rawBackend, idle time.Duration) (*client, *Server) {
	t.Helper()
	srv := &Server{Router: staticRouter(be.addr()), Limits: Limits{StreamIdleTimeout: idle}}
	c := dial(t, startProxy(t, srv))
	c.send("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if head, err := readRawHead(c.br); err != nil || !strings.HasPrefix(head, "HTTP/1.1 101 ") {
		t.Fatalf("head %q (%v)", head, err)
	}
	return c, srv
}

func TestUpgradedConnectionIdle(t *testing.T) {
	t.Parallel()
	// Wide enough that a tick delayed by a loaded CI machine still lands inside the timeout.
	const idle = time.Second
	t.Run("stays open while only the client sends, for longer than the idle timeout", func(t *testing.T) {
		t.Parallel()
		// The upstream reads and stays silent until the client says "end", then answers
		// once: a relay that timed each direction out on its own would have cut it.
		be := upgradeBackend(t, func(nc net.Conn, br *bufio.Reader) {
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if line == "end\n" {
					io.WriteString(nc, "bye\n")
					return
				}
			}
		})
		c, srv := upgradeThrough(t, be, idle)
		for range 8 { // 8 × idle/4: twice the idle timeout
			time.Sleep(idle / 4)
			c.send("tick\n")
		}
		c.send("end\n")
		if got, err := c.br.ReadString('\n'); err != nil || got != "bye\n" {
			t.Errorf("got %q (%v), want the upstream's bye", got, err)
		}
		if n := srv.Stats().UpgradesIdleClosed; n != 0 {
			t.Errorf("Stats().UpgradesIdleClosed = %d, want 0", n)
		}
	})
	t.Run("is closed and counted when neither side sends for the idle timeout", func(t *testing.T) {
		t.Parallel()
		be := upgradeBackend(t, func(nc net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
		c, srv := upgradeThrough(t, be, idle)
		start := time.Now()
		if _, err := io.ReadAll(c.br); err != nil {
			t.Logf("read: %v", err)
		}
		// The relay starts its clock a moment before the client has read the 101.
		if d := time.Since(start); d < idle/2 || d > 10*idle {
			t.Errorf("closed after %v, want about %v", d, idle)
		}
		waitFor(func() bool { return srv.Stats().UpgradesIdleClosed == 1 })
		if n := srv.Stats().UpgradesIdleClosed; n != 1 {
			t.Errorf("Stats().UpgradesIdleClosed = %d, want 1", n)
		}
	})
}
