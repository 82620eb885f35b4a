package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// Finding (attack): an origin-form target whose path starts with "//" is turned into an
// absolute-form target naming another host when the request crosses between HTTP/2 and
// HTTP/1.1. The engine hands the path to net/http as URL.Opaque, and net/http writes an Opaque
// starting with "//" as "http:" + Opaque. So `:path //evil.test/p` on h2c prior knowledge reaches
// an HTTP/1.1 upstream as `GET http://evil.test/p HTTP/1.1` with `Host: web.test`, and
// `GET //evil.test/p HTTP/1.1` reaches an h2c (HTTP2/GRPC) upstream with `:path
// http://evil.test/p`. RFC 9112 §3.2.2 has the upstream take the absolute-form authority over
// Host, so the upstream (an egress gateway, a virtual-host router) serves or dials a host the
// registry never matched; a Go h2c upstream refuses that :path, so the valid request gets 502.
// The target must reach the upstream as the path the client sent.
func TestAttackDoubleSlashPathsStayOriginFormAcrossProtocols(t *testing.T) {
	t.Parallel()
	t.Run("an h2c request's //host path reaches an HTTP/1.1 upstream as that path", func(t *testing.T) {
		t.Parallel()
		lines := make(chan string, 1)
		be := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSpace(line)
			for {
				l, err := br.ReadString('\n')
				if err != nil || l == "\r\n" {
					break
				}
			}
			io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		})
		router := &hostRouter{routes: map[string]Upstream{"web.test:8080": {Addr: be.addr()}}}
		proxy := startProxy(t, &Server{Router: router})
		req, _ := http.NewRequest("GET", "http://"+proxy+"//evil.test/p", nil)
		req.Host = "web.test:8080"
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, want := <-lines, "GET //evil.test/p HTTP/1.1"; got != want {
			t.Fatalf("upstream request line %q, want %q", got, want)
		}
	})
	t.Run("an HTTP/1.1 request's //host path reaches an h2c upstream as that path", func(t *testing.T) {
		t.Parallel()
		seen := make(chan string, 1)
		be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
			seen <- r.RequestURI + " host=" + r.Host + " url.host=" + r.URL.Host
		})
		pool := &Pool{}
		t.Cleanup(func() { pool.Close() })
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
			return Upstream{Addr: be.addr(), Protocol: H2C}, nil
		})
		c := dial(t, startProxy(t, &Server{Router: router, Pool: pool}))
		resp := c.roundTrip("GET //evil.test/p HTTP/1.1\r\nHost: web.test\r\n\r\n")
		var got string
		select {
		case got = <-seen:
		default:
			t.Fatalf("upstream not reached: %d %q", resp.StatusCode, resp.body)
		}
		if want := "//evil.test/p host=web.test url.host="; got != want {
			t.Fatalf("upstream saw %q, want %q", got, want)
		}
	})
	t.Run("an h2c request's //host path reaches an h2c upstream as that path", func(t *testing.T) {
		t.Parallel()
		seen := make(chan string, 1)
		be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
			seen <- r.RequestURI + " host=" + r.Host
		})
		pool := &Pool{}
		t.Cleanup(func() { pool.Close() })
		router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
			return Upstream{Addr: be.addr(), Protocol: H2C}, nil
		})
		proxy := startProxy(t, &Server{Router: router, Pool: pool})
		req, _ := http.NewRequest("GET", "http://"+proxy+"//evil.test/p", nil)
		req.Host = "web.test"
		resp, err := h2cClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var got string
		select {
		case got = <-seen:
		default:
			t.Fatalf("upstream not reached: %d", resp.StatusCode)
		}
		if want := "//evil.test/p host=web.test"; got != want {
			t.Fatalf("upstream saw %q, want %q", got, want)
		}
	})
}

// The "//" targets net/http cannot write as Opaque go out byte for byte, query included, or
// are refused before any upstream is reached. The client speaks raw HTTP/1.1, which can send
// any of them; the upstream is h2c, whose :path the x/net server hands over unchanged.
func TestDoubleSlashTargetsAreSentAsReceivedOrRefused(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 8)
	be := startH2CBackend(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.RequestURI
	})
	pool := &Pool{}
	t.Cleanup(func() { pool.Close() })
	router := RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
		return Upstream{Addr: be.addr(), Protocol: H2C}, nil
	})
	proxy := startProxy(t, &Server{Router: router, Pool: pool})
	tests := []struct {
		name       string
		target     string
		wantStatus int
		wantPath   string
	}{
		{name: "a query stays as sent", target: "//a.test/p?x=1&y", wantStatus: 200, wantPath: "//a.test/p?x=1&y"},
		{name: "an empty query stays as sent", target: "//a.test/p?", wantStatus: 200, wantPath: "//a.test/p?"},
		{name: "percent-encoding stays as sent", target: "//a.test/%2Fp%20q", wantStatus: 200, wantPath: "//a.test/%2Fp%20q"},
		{name: "an absolute-form target's //host path stays as sent", target: "http://web.test//a.test/p", wantStatus: 200, wantPath: "//a.test/p"},
		{name: "a bad percent-encoding is refused", target: "//a.test/%zz", wantStatus: 400},
		{name: "a byte net/http would escape is refused", target: "//a.test/p|q", wantStatus: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := dial(t, proxy).roundTrip("GET " + tc.target + " HTTP/1.1\r\nHost: web.test\r\n\r\n")
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, resp.body, tc.wantStatus)
			}
			var got string
			select {
			case got = <-seen:
			default:
			}
			if got != tc.wantPath {
				t.Fatalf("upstream saw :path %q, want %q", got, tc.wantPath)
			}
		})
	}
}
