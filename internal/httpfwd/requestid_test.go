package httpfwd

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestRequestIDIsNeverHopByHop(t *testing.T) {
	t.Parallel()
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Request-Id", strings.Join(r.Header.Values("X-Request-Id"), "|"))
	}
	h1, h2 := startBackend(t, echo), startH2CBackend(t, echo)
	tests := []struct {
		name   string
		fields string
		want   string // "" for a generated UUID
	}{
		{name: "keeps the client's id when Connection names x-request-id",
			fields: "Connection: x-request-id\r\nX-Request-Id: abc-123\r\n", want: "abc-123"},
		{name: "generates an id when Connection names x-request-id and none was sent",
			fields: "Connection: X-Request-ID, keep-alive\r\n"},
		{name: "generates an id when the client's is empty", fields: "X-Request-Id:\r\n"},
		{name: "sends one id when the client sent several", fields: "X-Request-Id: \r\nx-request-id: one\r\nX-Request-Id: two\r\n", want: "one"},
	}
	for _, proto := range []Protocol{HTTP1, H2C} {
		addr := h1.addr()
		if proto == H2C {
			addr = h2.addr()
		}
		pool := &Pool{}
		t.Cleanup(func() { pool.Close() })
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
			return Upstream{Addr: addr, Protocol: proto}, nil
		})
		proxy := startProxy(t, &Server{Router: router, Pool: pool})
		for _, tt := range tests {
			name := tt.name + " over HTTP/1.1"
			if proto == H2C {
				name = tt.name + " over h2c"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c := dial(t, proxy)
				resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n" + tt.fields + "\r\n")
				got := strings.Join(resp.Header.Values("X-Seen-Request-Id"), "|")
				if tt.want == "" && !uuid.MatchString(got) || tt.want != "" && got != tt.want {
					t.Errorf("upstream got x-request-id %q, want %q (empty: a generated UUID)", got, tt.want)
				}
			})
		}
	}
}
