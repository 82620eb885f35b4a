package httpfwd

import (
	"bufio"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadHead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		max            int
		wantErr        error
	}{
		{name: "stops after the empty line and leaves the body", in: "GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", want: "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "accepts bare LF line ends", in: "GET / HTTP/1.1\nHost: a\n\nbody", want: "GET / HTTP/1.1\nHost: a\n\n"},
		{name: "skips empty lines before the request line", in: "\r\n\r\nGET / HTTP/1.1\r\n\r\n", want: "GET / HTTP/1.1\r\n\r\n"},
		{name: "refuses a head above the limit", in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n", max: 64, wantErr: errHeadTooLarge},
		{name: "reports a head cut short", in: "GET / HTTP/1.1\r\nHost: a\r\n", wantErr: errors.New("EOF")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			max := tt.max
			if max == 0 {
				max = 64 << 10
			}
			// One byte per read puts the end marker across every possible boundary.
			br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tt.in)), 16)
			got, err := readHead(br, nil, max)
			if tt.wantErr != nil {
				if err == nil || err.Error() != tt.wantErr.Error() {
					t.Fatalf("err %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseRequestHead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in           string
		method, host, path string
		port               int
		length             int64
		chunked, keepAlive bool
	}{
		{name: "reads an origin-form GET", in: "GET /a?b HTTP/1.1\r\nHost: X.Test:81\r\n\r\n",
			method: "GET", host: "x.test", path: "/a?b", port: 81, length: -1, keepAlive: true},
		{name: "reads an absolute-form request and its port", in: "PATCH https://Y.test:8443/p HTTP/1.1\r\nHost: z\r\n\r\n",
			method: "PATCH", host: "y.test", path: "/p", port: 8443, length: -1, keepAlive: true},
		{name: "reads Content-Length and Connection: close", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\nConnection: Close\r\n\r\n",
			method: "POST", host: "a", path: "/", length: 7},
		{name: "reads a chunked request whatever the case and spacing of chunked", in: "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n",
			method: "PUT", host: "a", path: "/", length: -1, chunked: true, keepAlive: true},
		{name: "keeps an HTTP/1.0 connection only when asked", in: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			method: "GET", path: "/", length: -1, keepAlive: true},
		{name: "keeps percent-escapes in the path and a bare percent sign in the query", in: "GET /a%2Fb?q=100% HTTP/1.1\r\nHost: a\r\n\r\n",
			method: "GET", host: "a", path: "/a%2Fb?q=100%", length: -1, keepAlive: true},
		{name: "keeps an unknown method as sent", in: "PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n",
			method: "PROPFIND", host: "a", path: "/", length: -1, keepAlive: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r RequestHead
			if err := r.parse([]byte(tt.in)); err != nil {
				t.Fatal(err)
			}
			if r.Method != tt.method || r.Host != tt.host || string(r.Path) != tt.path || r.Port != tt.port ||
				r.ContentLength() != tt.length || r.Chunked() != tt.chunked || r.KeepAlive() != tt.keepAlive {
				t.Errorf("got %s %q %q port %d length %d chunked %v keep-alive %v", r.Method, r.Host, r.Path, r.Port,
					r.ContentLength(), r.Chunked(), r.KeepAlive())
			}
		})
	}
	t.Run("gives access to every field in order", func(t *testing.T) {
		t.Parallel()
		var r RequestHead
		if err := r.parse([]byte("GET / HTTP/1.1\r\nHost: a\r\nX-A:  1 \r\nx-a: 2\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if got := string(r.Header("X-a")); got != "1" {
			t.Errorf("Header = %q, want the first value, trimmed", got)
		}
		var all []string
		for name, value := range r.Headers() {
			all = append(all, string(name)+"="+string(value))
		}
		if got := strings.Join(all, ","); got != "Host=a,X-A=1,x-a=2" {
			t.Errorf("Headers = %s", got)
		}
	})
	t.Run("drops the route hint the previous head left", func(t *testing.T) {
		t.Parallel()
		r := RequestHead{RouteHint: "the last request's route"}
		if err := r.parse([]byte("GET / HTTP/1.1\r\nHost: b\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if r.RouteHint != nil {
			t.Errorf("RouteHint = %v after a new head, want none", r.RouteHint)
		}
	})
}

func TestParseRequestHeadDoesNotAllocate(t *testing.T) {
	raw := []byte("POST /x HTTP/1.1\r\nHost: svc.test:80\r\nContent-Length: 3\r\nConnection: keep-alive, X-A\r\n\r\n")
	var r RequestHead
	r.parse(raw) // the first parse sizes the field slice and sets Host
	if n := testing.AllocsPerRun(100, func() { r.parse(raw) }); n != 0 {
		t.Errorf("parse allocates %v times per request", n)
	}
}
