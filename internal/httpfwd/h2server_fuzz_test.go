package httpfwd

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// FuzzHTTP2Head checks the RequestHead built for an HTTP/2 stream: whatever the :authority,
// :path and fields, a head that is routed names exactly the host and port of the authority,
// never an IPv6 zone, and no field smuggled into the text written for the parser reaches
// the Router.
func FuzzHTTP2Head(f *testing.F) {
	for _, seed := range [][3]string{
		{"echo.test:50051", "/pkg.Svc/Call", "v"},
		{"Web.Test", "/?q=1", ""},
		{"[::1]:8080", "*", "trailers"},
		{"[fe80::1%eth0]:80", "/", ""},
		{"a.test\r\nHost: b.test", "/", ""},
		{"a.test", "/ HTTP/1.1\r\nHost: b.test\r\nX:", ""},
		{"a.test", "/", "x\r\nHost: b.test"},
		{"a.test:", "/", ""},
		{"", "/", ""},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	hc := &h2Conn{s: &Server{}, remote: &net.TCPAddr{Port: 1}, local: &net.TCPAddr{Port: 2}}
	f.Fuzz(func(t *testing.T, authority, path, value string) {
		r := &http.Request{Method: "GET", Host: authority, RequestURI: path,
			Header: http.Header{"X-Value": {value}}}
		st := &h2Stream{hc: hc, r: r}
		status, _ := st.parseHead()
		if status != 0 {
			if status < 400 || status > 599 {
				t.Fatalf("refused with status %d", status)
			}
			return
		}
		head := &st.head
		if strings.Contains(head.Host, "%") {
			t.Fatalf("routed a zoned host %q from %q", head.Host, authority)
		}
		host, port := authority, ""
		if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.HasSuffix(authority, "]") {
			host, port = authority[:i], authority[i+1:]
		}
		host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if head.Host != host {
			t.Fatalf("authority %q routed as host %q, want %q", authority, head.Host, host)
		}
		if want, _ := strconv.Atoi(port); head.Port != want {
			t.Fatalf("authority %q routed as port %d, want %s", authority, head.Port, port)
		}
		if head.Header("x-value") == nil && value != "" || head.hosts != 1 {
			t.Fatalf("fields changed on the way: x-value %q, %d Host fields", head.Header("x-value"), head.hosts)
		}
		if string(head.Target) != path || head.Absolute {
			t.Fatalf("path %q routed as target %q (absolute %v)", path, head.Target, head.Absolute)
		}
	})
}
