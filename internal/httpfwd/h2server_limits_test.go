package httpfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// rawH2 is a raw HTTP/2 client connection, so tests control every frame.
type rawH2 struct {
	t  *testing.T
	nc net.Conn
	fr *http2.Framer
}

func dialH2(t *testing.T, addr string) *rawH2 {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatalf("write preface: %v", err)
	}
	fr := http2.NewFramer(nc, nc)
	fr.ReadMetaHeaders = hpackDecoder()
	if err := fr.WriteSettings(); err != nil {
		t.Fatalf("write settings: %v", err)
	}
	return &rawH2{t: t, nc: nc, fr: fr}
}

// get opens stream id with a GET for authority.
func (c *rawH2) get(id uint32, authority string, extra ...string) {
	c.t.Helper()
	block := hpackBlock(append([]string{":method", "GET", ":scheme", "http", ":authority", authority, ":path", "/"}, extra...)...)
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		c.t.Fatalf("write headers: %v", err)
	}
}

// next reads frames until one that is not SETTINGS, acknowledging the peer's settings, and
// returns it; settings, when not nil, receives the settings the server announced.
func (c *rawH2) next(settings map[http2.SettingID]uint32) http2.Frame {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("read frame: %v", err)
		}
		sf, ok := f.(*http2.SettingsFrame)
		if !ok {
			if _, ok := f.(*http2.WindowUpdateFrame); ok {
				continue
			}
			return f
		}
		if !sf.IsAck() {
			sf.ForeachSetting(func(s http2.Setting) error {
				if settings != nil {
					settings[s.ID] = s.Val
				}
				return nil
			})
			c.fr.WriteSettingsAck()
		}
	}
}

func TestHTTP2Settings(t *testing.T) {
	tests := []struct {
		name        string
		h2          HTTP2Limits
		limits      Limits
		wantStreams uint32
		minList     uint32 // the announced header list size is at least MaxHeaderBytes
	}{
		{name: "defaults cap streams at 100 and headers at 64 KiB", wantStreams: 100, minList: 64 << 10},
		{
			name:        "configured limits are announced",
			h2:          HTTP2Limits{MaxConcurrentStreams: 7},
			limits:      Limits{MaxHeaderBytes: 4096},
			wantStreams: 7, minList: 4096,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &Server{Router: &hostRouter{}, HTTP2: tt.h2, Limits: tt.limits}
			c := dialH2(t, startProxy(t, srv))
			c.get(1, "x.test")
			settings := map[http2.SettingID]uint32{}
			c.next(settings) // the answer to the GET, after the server's SETTINGS
			if got := settings[http2.SettingMaxConcurrentStreams]; got != tt.wantStreams {
				t.Errorf("MAX_CONCURRENT_STREAMS = %d, want %d", got, tt.wantStreams)
			}
			if got := settings[http2.SettingMaxHeaderListSize]; got < tt.minList || got > tt.minList+1024 {
				t.Errorf("MAX_HEADER_LIST_SIZE = %d, want about %d", got, tt.minList)
			}
		})
	}
}

func TestHTTP2Bounds(t *testing.T) {
	release := make(chan struct{})
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") != "" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	router := &hostRouter{routes: map[string]Upstream{"web.test:0": {Addr: be.addr()}}}
	srv := &Server{Router: router, HTTP2: HTTP2Limits{MaxConcurrentStreams: 2, IdleTimeout: 300 * time.Millisecond},
		Limits: Limits{MaxHeaderBytes: 2048}}
	proxy := startProxy(t, srv)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })

	t.Run("a stream beyond MaxConcurrentStreams is reset and counted", func(t *testing.T) {
		c := dialH2(t, proxy)
		for _, id := range []uint32{1, 3, 5} {
			block := hpackBlock(":method", "GET", ":scheme", "http", ":authority", "web.test", ":path", "/?wait=1")
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true})
		}
		f := c.next(nil)
		rst, ok := f.(*http2.RSTStreamFrame)
		if !ok || rst.StreamID != 5 {
			t.Fatalf("got %v, want RST_STREAM on stream 5", f)
		}
		if got := srv.HTTP2Stats().RefusedStreams; got != 1 {
			t.Errorf("RefusedStreams = %d, want 1", got)
		}
		// Streams 1 and 3 are routed on their own goroutines: let them be, so that a late
		// Route call is not taken for one the next test made.
		waitFor(func() bool { return len(router.calls()) >= 2 })
		once.Do(func() { close(release) })
	})
	t.Run("a header list over MaxHeaderBytes is refused with 431 before routing", func(t *testing.T) {
		before := len(router.calls())
		c := dialH2(t, proxy)
		var big []string // fields small enough for HPACK, together over the limit
		for i := range 10 {
			big = append(big, fmt.Sprintf("x-big-%d", i), strings.Repeat("a", 300))
		}
		c.get(1, "web.test", big...)
		f := c.next(nil)
		hf, ok := f.(*http2.MetaHeadersFrame)
		if !ok || hf.PseudoValue("status") != "431" {
			t.Fatalf("got %v, want a 431", f)
		}
		if n := len(router.calls()); n != before {
			t.Errorf("router was called: %q", router.calls()[before:])
		}
	})
	t.Run("an idle connection is sent a GOAWAY and closed after IdleTimeout", func(t *testing.T) {
		c := dialH2(t, proxy)
		start := time.Now()
		f := c.next(nil)
		if ga, ok := f.(*http2.GoAwayFrame); !ok || ga.ErrCode != http2.ErrCodeNo {
			t.Fatalf("got %v, want GOAWAY NO_ERROR", f)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("GOAWAY after %v, want about 300ms", d)
		}
		if _, err := c.fr.ReadFrame(); err == nil {
			t.Errorf("connection still open after GOAWAY")
		}
	})
	t.Run("connections and streams are counted", func(t *testing.T) {
		st := srv.HTTP2Stats()
		if st.Conns < 3 || st.Streams < 2 {
			t.Errorf("stats %+v, want at least 3 connections and 2 streams", st)
		}
	})
}

func TestHTTP2Shutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	router := &hostRouter{routes: map[string]Upstream{"web.test:0": {Addr: be.addr()}}}
	srv := &Server{Router: router}
	proxy := startProxy(t, srv)
	var once sync.Once
	finish := func() { once.Do(func() { close(release) }) }
	t.Cleanup(finish) // a failing test must not leave the upstream waiting

	c := dialH2(t, proxy)
	c.get(1, "web.test")
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatalf("the stream never reached the upstream")
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()

	f := c.next(nil)
	if ga, ok := f.(*http2.GoAwayFrame); !ok || ga.ErrCode != http2.ErrCodeNo {
		t.Fatalf("got %v, want GOAWAY NO_ERROR while the stream is in flight", f)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a stream in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	finish()
	var status, body string
	for status == "" || body == "" {
		switch f := c.next(nil).(type) {
		case *http2.MetaHeadersFrame:
			status = f.PseudoValue("status")
		case *http2.DataFrame:
			body += string(f.Data())
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset: %v", f.ErrCode)
		}
	}
	if status != "200" || body != "finished" {
		t.Errorf("got %s %q, want the in-flight response to finish", status, body)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrServerClosed) {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestPrefaceCheckKeepsShortHTTP1Requests(t *testing.T) {
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Method) })
	srv := &Server{Router: staticRouter(be.addr()), Limits: Limits{HeaderReadTimeout: 5 * time.Second}}
	proxy := startProxy(t, srv)
	// Shorter than the preface and starting with its first letter: the check must not wait
	// for 24 bytes that never come.
	c := dial(t, proxy)
	start := time.Now()
	resp := c.roundTrip("PUT / HTTP/1.0\r\n\r\n")
	if resp.StatusCode != 200 || resp.body != "PUT" {
		t.Errorf("got %d %q", resp.StatusCode, resp.body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("answered after %v: the preface check waited for more bytes", d)
	}
}

func TestHTTP2StreamIdleTimeout(t *testing.T) {
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		pause, _ := time.ParseDuration(r.URL.Query().Get("pause"))
		sleep := func() bool {
			select {
			case <-time.After(pause):
				return true
			case <-r.Context().Done(): // the proxy gave up
				return false
			}
		}
		if r.URL.Query().Get("first") == "" && !sleep() {
			return
		}
		for i := range 4 {
			io.WriteString(w, fmt.Sprint(i))
			w.(http.Flusher).Flush()
			if !sleep() {
				return
			}
		}
	})
	router := &hostRouter{routes: map[string]Upstream{"web.test:0": {Addr: be.addr()}}}
	srv := &Server{Router: router, Limits: Limits{StreamIdleTimeout: 500 * time.Millisecond}}
	proxy := startProxy(t, srv)
	client := h2cClient(t)
	tests := []struct {
		name       string
		query      string
		wantStatus int
		wantBody   string
		wantErr    bool
	}{
		{name: "a response slower than StreamIdleTimeout gets a 504", query: "pause=1s", wantStatus: 504,
			wantBody: "meshentry: upstream timed out; request id ID\n"},
		{name: "a stream pausing less than StreamIdleTimeout each time outlasts it", query: "pause=100ms",
			wantStatus: 200, wantBody: "0123"},
		{name: "a body pausing longer than StreamIdleTimeout is reset", query: "pause=1s&first=1",
			wantStatus: 200, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+proxy+"/?"+tt.query, nil)
			req.Host = "web.test"
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			wantBody := strings.ReplaceAll(tt.wantBody, "ID", resp.Header.Get("X-Request-Id"))
			if resp.StatusCode != tt.wantStatus || (err != nil) != tt.wantErr || !tt.wantErr && string(body) != wantBody {
				t.Errorf("got %d %q, read error %v; want %d %q, error %v",
					resp.StatusCode, body, err, tt.wantStatus, wantBody, tt.wantErr)
			}
		})
	}
}

func TestHTTP2RouterPanicResetsOnlyItsStream(t *testing.T) {
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
		if req.Host == "boom.test" {
			panic("router bug")
		}
		return Upstream{Addr: be.addr()}, nil
	})
	proxy := startProxy(t, &Server{Router: router})
	c := dialH2(t, proxy)
	c.get(1, "boom.test")
	if f, ok := c.next(nil).(*http2.RSTStreamFrame); !ok || f.StreamID != 1 {
		t.Fatalf("got %v, want stream 1 reset", f)
	}
	c.get(3, "fine.test")
	hf, ok := c.next(nil).(*http2.MetaHeadersFrame)
	if !ok || hf.StreamID != 3 || hf.PseudoValue("status") != "200" {
		t.Fatalf("got %v, want a 200 on stream 3 of the same connection", hf)
	}
}
