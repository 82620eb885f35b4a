package httpfwd

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// echoHeadBackend reports what it received: target, Host and version in response fields,
// the sorted field names in the body.
func echoHeadBackend(t *testing.T) *backend {
	return startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for k := range r.Header {
			names = append(names, strings.ToLower(k))
		}
		sort.Strings(names)
		w.Header().Set("X-Seen-Uri", r.RequestURI)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Proto", r.Proto)
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		io.WriteString(w, strings.Join(names, ","))
	})
}

// recordingRouter routes to addr and remembers the heads it saw.
type recordingRouter struct {
	addr string
	mu   sync.Mutex
	seen []routeView
	errs []error
}

// routeView is the part of a RequestHead a Router decides on.
type routeView struct {
	Method, Host, Scheme string
	Port, ProtoMinor     int
	Absolute             bool
}

func (r *recordingRouter) Route(req *RequestHead, attempt int) (Upstream, *Reject) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, routeView{Method: req.Method, Host: req.Host, Port: req.Port,
		Absolute: req.Absolute, Scheme: req.Scheme, ProtoMinor: req.ProtoMinor})
	return Upstream{Addr: r.addr}, nil
}

func (r *recordingRouter) Done(_ Upstream, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *recordingRouter) last() routeView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[len(r.seen)-1]
}

func TestRequestHeadRewrite(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	tests := []struct {
		name     string
		request  string
		wantURI  string
		wantHost string
		route    routeView // what the Router must see
		upHost   string
	}{
		{
			name:     "rewrites an absolute-form target to origin-form and sends its authority as Host",
			request:  "GET http://Example.Test:8080/p/q?x=1 HTTP/1.1\r\nHost: ignored.test\r\n\r\n",
			wantURI:  "/p/q?x=1",
			wantHost: "Example.Test:8080",
			route:    routeView{Method: "GET", Host: "example.test", Port: 8080, Absolute: true, Scheme: "http", ProtoMinor: 1},
		},
		{
			name:     "adds the slash an absolute-form target without path lacks",
			request:  "GET http://example.test?x=1 HTTP/1.1\r\nHost: example.test\r\n\r\n",
			wantURI:  "/?x=1",
			wantHost: "example.test",
			route:    routeView{Method: "GET", Host: "example.test", Absolute: true, Scheme: "http", ProtoMinor: 1},
		},
		{
			name:     "preserves the Host of an origin-form request and routes by it",
			request:  "GET /a%20b?c HTTP/1.1\r\nHost: Svc.Example:81\r\n\r\n",
			wantURI:  "/a%20b?c",
			wantHost: "Svc.Example:81",
			route:    routeView{Method: "GET", Host: "svc.example", Port: 81, ProtoMinor: 1},
		},
		{
			name:     "routes by an IPv6 literal without its brackets",
			request:  "GET / HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n",
			wantURI:  "/",
			wantHost: "[::1]:9000",
			route:    routeView{Method: "GET", Host: "::1", Port: 9000, ProtoMinor: 1},
		},
		{
			name:     "sends the Host the Router chose",
			request:  "GET /x HTTP/1.1\r\nHost: alias.test\r\n\r\n",
			wantURI:  "/x",
			wantHost: "canonical.test",
			route:    routeView{Method: "GET", Host: "alias.test", ProtoMinor: 1},
			upHost:   "canonical.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			router := &recordingRouter{addr: be.addr()}
			var r Router = router
			if tt.upHost != "" {
				r = RouterFunc(func(req *RequestHead, attempt int) (Upstream, *Reject) {
					router.Route(req, attempt)
					return Upstream{Addr: be.addr(), Host: tt.upHost}, nil
				})
			}
			c := dial(t, startProxy(t, &Server{Router: r}))
			resp := c.roundTrip(tt.request)
			if got := resp.Header.Get("X-Seen-Uri"); got != tt.wantURI {
				t.Errorf("upstream saw target %q, want %q", got, tt.wantURI)
			}
			if got := resp.Header.Get("X-Seen-Host"); got != tt.wantHost {
				t.Errorf("upstream saw Host %q, want %q", got, tt.wantHost)
			}
			if got := resp.Header.Get("X-Seen-Proto"); got != "HTTP/1.1" {
				t.Errorf("upstream saw %s, want HTTP/1.1", got)
			}
			if got := router.last(); got != tt.route {
				t.Errorf("Router saw %+v, want %+v", got, tt.route)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	t.Run("adds a random x-request-id when the request has none", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		first := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n").Header.Get("X-Seen-Request-Id")
		second := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n\r\n").Header.Get("X-Seen-Request-Id")
		if !uuid.MatchString(first) || !uuid.MatchString(second) || first == second {
			t.Errorf("ids %q and %q: want two different UUIDs", first, second)
		}
	})
	t.Run("keeps the x-request-id the client sent", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		got := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\nX-Request-ID: abc-123\r\n\r\n").Header.Get("X-Seen-Request-Id")
		if got != "abc-123" {
			t.Errorf("upstream saw %q, want abc-123", got)
		}
	})
}

func TestHopByHopFieldsAreDropped(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	t.Run("drops hop-by-hop request fields and those named in Connection", func(t *testing.T) {
		c := dial(t, addr)
		resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\n" +
			"Connection: keep-alive, X-Hop, x-other-hop\r\nX-Hop: 1\r\nX-Other-Hop: 2\r\n" +
			"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\n" +
			"Upgrade: h2c\r\nProxy-Authorization: Basic eDp5\r\nX-End-To-End: 1\r\n\r\n")
		if resp.body != "via,x-end-to-end,x-request-id" {
			t.Errorf("upstream saw fields %q, want only via, x-end-to-end and x-request-id", resp.body)
		}
	})
	t.Run("drops hop-by-hop response fields and those named in Connection", func(t *testing.T) {
		raw := startRawBackend(t, func(nc net.Conn, br *bufio.Reader) {
			for {
				if _, err := readRawRequest(br); err != nil {
					return
				}
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nConnection: X-Internal\r\nX-Internal: 1\r\n"+
					"Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nUpgrade: h2\r\nX-End: 1\r\n"+
					"Content-Length: 2\r\n\r\nok")
			}
		})
		c := dial(t, startProxy(t, &Server{Router: staticRouter(raw.addr())}))
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		head, err := readRawHead(c.br)
		if err != nil {
			t.Fatal(err)
		}
		want := "HTTP/1.1 200 OK\r\nX-End: 1\r\nContent-Length: 2\r\n\r\n"
		if head != want {
			t.Errorf("client got head %q, want %q", head, want)
		}
	})
}

func TestHTTP10Clients(t *testing.T) {
	t.Parallel()
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			return
		}
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	})
	addr := startProxy(t, &Server{Router: staticRouter(be.addr())})
	t.Run("closes an HTTP/1.0 connection after the response", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		resp := c.roundTrip("GET / HTTP/1.0\r\n\r\n")
		if resp.StatusCode != 200 || resp.body != "hello" || !resp.Close {
			t.Errorf("got %d %q close=%v", resp.StatusCode, resp.body, resp.Close)
		}
		if !c.closed() {
			t.Error("connection left open")
		}
	})
	t.Run("removes chunked framing for an HTTP/1.0 client", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		c.send("GET /chunked HTTP/1.0\r\nHost: a\r\n\r\n")
		head, err := readRawHead(c.br)
		if err != nil || strings.Contains(strings.ToLower(head), "transfer-encoding") {
			t.Fatalf("head %q (%v): want no Transfer-Encoding", head, err)
		}
		body, _ := io.ReadAll(c.br)
		if string(body) != "part one, part two" {
			t.Errorf("body %q", body)
		}
	})
	t.Run("keeps an HTTP/1.0 keep-alive connection open", func(t *testing.T) {
		t.Parallel()
		c := dial(t, addr)
		for range 2 {
			resp := c.roundTrip("GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: a\r\n\r\n")
			if resp.body != "hello" || resp.Header.Get("Connection") != "keep-alive" {
				t.Fatalf("got %q Connection=%q", resp.body, resp.Header.Get("Connection"))
			}
		}
	})
}

func TestClientConnectionClose(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
	resp := c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("got %d close=%v, want 200 with Connection: close", resp.StatusCode, resp.Close)
	}
	if !c.closed() {
		t.Error("connection left open after Connection: close")
	}
}

func TestPipelinedRequests(t *testing.T) {
	t.Parallel()
	be := echoHeadBackend(t)
	c := dial(t, startProxy(t, &Server{Router: staticRouter(be.addr())}))
	c.send("GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/one", "/two", "/three"} {
		if got := c.read("GET").Header.Get("X-Seen-Uri"); got != want {
			t.Errorf("response for %q, want %q", got, want)
		}
	}
}
