package httpfwd

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// headWithFields returns a GET head with n fields in all, Host included.
func headWithFields(n int) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: fields.test\r\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "X-F%d: v\r\n", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

func TestHeaderFieldCountLimit(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	tests := []struct {
		name       string
		limits     Limits
		fields     int
		wantStatus int
	}{
		{name: "forwards a head of 100 fields under the default limit", fields: 100, wantStatus: 200},
		{name: "refuses a head of 101 fields under the default limit with 431", fields: 101, wantStatus: 431},
		{name: "refuses a head over a configured limit with 431", limits: Limits{MaxHeaders: 10}, fields: 11, wantStatus: 431},
		{name: "forwards a head at a configured limit", limits: Limits{MaxHeaders: 10}, fields: 10, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &Server{Router: staticRouter(be.addr()), Limits: tt.limits}
			c := dial(t, startProxy(t, srv))
			resp := c.roundTrip(headWithFields(tt.fields))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			var want uint64
			if tt.wantStatus == 431 {
				want = 1
			}
			if got := srv.Stats().TooManyHeaders; got != want {
				t.Errorf("Stats().TooManyHeaders = %d, want %d", got, want)
			}
		})
	}
}

// connectionListHead returns a head of close to 64 KiB: fields X-F0... and a Connection field
// listing opts names, the first of which is X-F1. With inList false the same names go in an
// ordinary field instead, for a head of the same size whose fields are all forwarded.
func connectionListHead(fields, opts int, inList bool) string {
	var b strings.Builder
	b.WriteString("GET / HTTP/1.1\r\nHost: conn.test\r\n")
	if inList {
		b.WriteString("Connection: X-F1")
	} else {
		b.WriteString("X-List: X-F1")
	}
	for i := range opts {
		fmt.Fprintf(&b, ",ox%05d", i)
	}
	b.WriteString("\r\n")
	for i := range fields {
		fmt.Fprintf(&b, "X-F%d: 1\r\n", i)
	}
	b.WriteString("\r\n")
	return b.String()
}

func TestLongConnectionListDoesNotCostPerFieldAndOption(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d %q %q", len(r.Header), r.Header.Get("X-F1"), r.Header.Get("X-F2"))
	})
	srv := &Server{Router: staticRouter(be.addr()), Limits: Limits{MaxHeaders: 1 << 20}}
	addr := startProxy(t, srv)
	const fields, opts = 3800, 2000
	listed, plain := connectionListHead(fields, opts, true), connectionListHead(fields, opts, false)
	if len(listed) > 64<<10 {
		t.Fatalf("test head is %d bytes, over the 64 KiB limit", len(listed))
	}
	// best is the fastest of three exchanges, so a busy machine does not decide the test.
	best := func(raw string) (time.Duration, response) {
		var min time.Duration
		var last response
		for range 3 {
			c := dial(t, addr)
			t0 := time.Now()
			last = c.roundTrip(raw)
			if d := time.Since(t0); min == 0 || d < min {
				min = d
			}
		}
		return min, last
	}
	dListed, resp := best(listed)
	if resp.StatusCode != 200 || !strings.HasSuffix(resp.body, `"" "1"`) {
		t.Fatalf("got %d %q, want X-F1 dropped as listed in Connection and X-F2 forwarded", resp.StatusCode, resp.body)
	}
	dPlain, _ := best(plain)
	// Comparing each field with each option costs ~7.6M comparisons here, many times the
	// exchange itself; a set makes the two heads cost about the same.
	if dListed > 8*dPlain+50*time.Millisecond {
		t.Errorf("a head whose Connection lists %d names took %v, the same head without the list %v", opts, dListed, dPlain)
	}
}
