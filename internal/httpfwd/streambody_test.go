package httpfwd

import (
	"strconv"
	"strings"
	"testing"
)

// A request body larger than what arrived with its head is streamed on a goroutine of its own.
// When the upstream answers once it has it all, the exchange is as whole as any: the client
// connection stays open and the upstream connection is reused.
func TestAStreamedBodyKeepsBothConnections(t *testing.T) {
	t.Parallel()
	for _, size := range []int{2 * arrivalSize, 3 * readSize, 200 << 10} {
		t.Run("a body of "+strconv.Itoa(size)+" bytes", func(t *testing.T) {
			t.Parallel()
			be := okBackend(t, nil)
			c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
			raw := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n" + strings.Repeat("b", size)
			for i := range 20 {
				resp := c.roundTrip(raw)
				if resp.StatusCode != 200 || resp.body != "ok" {
					t.Fatalf("request %d: %d %q", i, resp.StatusCode, resp.body)
				}
				if resp.Close {
					t.Fatalf("request %d: the proxy closed the client connection after a body it read whole", i)
				}
			}
			if n := be.conns.Load(); n != 1 {
				t.Errorf("the backend accepted %d connections for 20 requests on one client connection, want 1", n)
			}
		})
	}
}
