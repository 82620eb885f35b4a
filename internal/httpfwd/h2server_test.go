package httpfwd

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// echoService is a gRPC service described by hand, so the tests need no generated code:
// Unary answers "echo:" and the request; Chat answers each message as it arrives.
var echoService = grpc.ServiceDesc{
	ServiceName: "meshentry.test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if in.Value == "fail" {
				return nil, status.Error(codes.NotFound, "asked to fail")
			}
			md, _ := metadata.FromIncomingContext(ctx)
			grpc.SetTrailer(ctx, metadata.Pairs("x-seen-authority", strings.Join(md[":authority"], ",")))
			return wrapperspb.String("echo:" + in.Value), nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chat",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(_ any, stream grpc.ServerStream) error {
			for {
				in := new(wrapperspb.StringValue)
				if err := stream.RecvMsg(in); err == io.EOF {
					stream.SetTrailer(metadata.Pairs("x-chat", "done"))
					return nil
				} else if err != nil {
					return err
				}
				if err := stream.SendMsg(wrapperspb.String("re:" + in.Value)); err != nil {
					return err
				}
			}
		},
	}},
}

var chatDesc = &grpc.StreamDesc{StreamName: "Chat", ServerStreams: true, ClientStreams: true}

// startGRPCBackend runs echoService on a plaintext (h2c) gRPC server.
func startGRPCBackend(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	gs := grpc.NewServer()
	gs.RegisterService(&echoService, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		gs.Serve(ln)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return ln.Addr().String()
}

// grpcClient dials the proxy with prior knowledge, asking for authority.
func grpcClient(t *testing.T, proxy, authority string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+proxy,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// h2cClient is a net/http client that speaks HTTP/2 with prior knowledge over TCP.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// hostRouter routes by host and port to the upstreams in routes and rejects anything else
// with a 404, as the proxy's router does for undeclared hosts. It records what it saw.
type hostRouter struct {
	routes map[string]Upstream // by "host:port"
	mu     sync.Mutex
	seen   []string // "host:port attempt local-address" per Route call
	done   []error
}

func (h *hostRouter) Route(req *RequestHead, attempt int) (Upstream, *Reject) {
	key := fmt.Sprintf("%s:%d", req.Host, req.Port)
	h.mu.Lock()
	h.seen = append(h.seen, fmt.Sprintf("%s %d %v", key, attempt, req.LocalAddr))
	h.mu.Unlock()
	up, ok := h.routes[key]
	if !ok {
		return Upstream{}, &Reject{Status: 404, Reason: "no route to " + key, Body: "unknown host\n"}
	}
	if attempt > 0 {
		up.Addr = h.routes[key+" retry"].Addr
	}
	return up, nil
}

func (h *hostRouter) Done(_ Upstream, err error) {
	h.mu.Lock()
	h.done = append(h.done, err)
	h.mu.Unlock()
}

func (h *hostRouter) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.seen...)
}

func TestHTTP2PriorKnowledgeGRPC(t *testing.T) {
	grpcAddr := startGRPCBackend(t)
	router := &hostRouter{routes: map[string]Upstream{
		"echo.test:50051":        {Addr: grpcAddr, Protocol: H2C},
		"flaky.test:50051":       {Addr: closedAddr(t), Protocol: H2C},
		"flaky.test:50051 retry": {Addr: grpcAddr},
	}}
	proxy := startProxy(t, &Server{Router: router})

	t.Run("a unary call reaches the gRPC upstream with its authority and returns its trailers", func(t *testing.T) {
		cc := grpcClient(t, proxy, "echo.test:50051")
		out := new(wrapperspb.StringValue)
		var trailer metadata.MD
		err := cc.Invoke(withTimeout(t), "/meshentry.test.Echo/Unary", wrapperspb.String("hi"), out, grpc.Trailer(&trailer))
		if err != nil {
			t.Fatalf("unary call: %v", err)
		}
		if out.Value != "echo:hi" {
			t.Errorf("got %q, want echo:hi", out.Value)
		}
		if got := trailer.Get("x-seen-authority"); len(got) != 1 || got[0] != "echo.test:50051" {
			t.Errorf("upstream saw authority %q", got)
		}
	})
	t.Run("a gRPC error status from the upstream reaches the client", func(t *testing.T) {
		cc := grpcClient(t, proxy, "echo.test:50051")
		err := cc.Invoke(withTimeout(t), "/meshentry.test.Echo/Unary", wrapperspb.String("fail"), new(wrapperspb.StringValue))
		if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "asked to fail") {
			t.Fatalf("got %v, want NotFound from the upstream", err)
		}
	})
	t.Run("a bidirectional stream carries each message both ways as it is sent", func(t *testing.T) {
		cc := grpcClient(t, proxy, "echo.test:50051")
		stream, err := cc.NewStream(withTimeout(t), chatDesc, "/meshentry.test.Echo/Chat")
		if err != nil {
			t.Fatalf("open stream: %v", err)
		}
		// Each answer is awaited before the next message is sent: a proxy that buffered
		// either direction would deadlock here.
		for i := range 5 {
			msg := fmt.Sprintf("m%d", i)
			if err := stream.SendMsg(wrapperspb.String(msg)); err != nil {
				t.Fatalf("send %s: %v", msg, err)
			}
			in := new(wrapperspb.StringValue)
			if err := stream.RecvMsg(in); err != nil {
				t.Fatalf("receive the answer to %s: %v", msg, err)
			}
			if in.Value != "re:"+msg {
				t.Fatalf("got %q, want re:%s", in.Value, msg)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatalf("close send: %v", err)
		}
		if err := stream.RecvMsg(new(wrapperspb.StringValue)); err != io.EOF {
			t.Fatalf("end of stream: got %v, want io.EOF", err)
		}
		if got := stream.Trailer().Get("x-chat"); len(got) != 1 || got[0] != "done" {
			t.Errorf("stream trailer x-chat = %q, want done", got)
		}
	})
	t.Run("a connect failure is retried on the endpoint the router picks next", func(t *testing.T) {
		cc := grpcClient(t, proxy, "flaky.test:50051")
		out := new(wrapperspb.StringValue)
		if err := cc.Invoke(withTimeout(t), "/meshentry.test.Echo/Unary", wrapperspb.String("again"), out); err != nil {
			t.Fatalf("unary call: %v", err)
		}
		var attempts []string
		for _, c := range router.calls() {
			if strings.HasPrefix(c, "flaky.test:50051 ") {
				attempts = append(attempts, c)
			}
		}
		if len(attempts) != 2 || !strings.HasPrefix(attempts[1], "flaky.test:50051 1 ") {
			t.Errorf("router calls %q, want attempts 0 and 1", attempts)
		}
	})
	t.Run("the router sees the connection's local address", func(t *testing.T) {
		calls := router.calls()
		if len(calls) == 0 || !strings.HasSuffix(calls[0], " "+proxy) {
			t.Errorf("router calls %q, want local address %s", calls, proxy)
		}
	})
}

func TestHTTP2PriorKnowledgeToHTTP1(t *testing.T) {
	be := startBackend(t, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Trailer", "X-Digest")
		w.Header().Set("Connection", "X-Private")
		w.Header().Set("X-Private", "for this hop only")
		w.Header().Set("X-Echo-Request-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Echo-Te", r.Header.Get("Te"))
		w.Header().Set("X-Seen", fmt.Sprintf("%s %s %s %s id=%d ua=%q", r.Proto, r.Method, r.Host, r.RequestURI,
			len(r.Header.Get("X-Request-Id")), r.Header.Get("User-Agent")))
		fmt.Fprintf(w, "got %d bytes", len(body))
		w.Header().Set("X-Digest", digest(body))
	})
	router := &hostRouter{routes: map[string]Upstream{"web.test:8080": {Addr: be.addr()}}}
	proxy := startProxy(t, &Server{Router: router})
	client := h2cClient(t)
	body := payload(100 << 10)

	t.Run("a request is routed by its authority to an HTTP/1.1 upstream with body and trailers", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://"+proxy+"/up?x=1", strings.NewReader(string(body)))
		req.Host = "Web.Test:8080"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(got) != fmt.Sprintf("got %d bytes", len(body)) {
			t.Fatalf("got %d %q", resp.StatusCode, got)
		}
		if want := `HTTP/1.1 POST Web.Test:8080 /up?x=1 id=36 ua="Go-http-client/2.0"`; resp.Header.Get("X-Seen") != want {
			t.Errorf("upstream saw %q, want %q", resp.Header.Get("X-Seen"), want)
		}
		if v, ok := resp.Header["X-Private"]; ok {
			t.Errorf("X-Private %q, listed in Connection, was forwarded", v)
		}
		if resp.Trailer.Get("X-Digest") != digest(body) {
			t.Errorf("trailer X-Digest = %q, want the body's digest", resp.Trailer.Get("X-Digest"))
		}
	})
	t.Run("a client's request id is kept and TE dropped", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+proxy+"/", nil)
		req.Host = "web.test:8080"
		req.Header.Set("X-Request-Id", "client-chosen")
		req.Header.Set("Te", "trailers")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Echo-Request-Id"); got != "client-chosen" {
			t.Errorf("upstream saw x-request-id %q, want client-chosen", got)
		}
		if got := resp.Header.Get("X-Echo-Te"); got != "" {
			t.Errorf("upstream saw TE %q, a hop-by-hop field", got)
		}
	})
}

func TestHTTP2PriorKnowledgeFailures(t *testing.T) {
	dead := closedAddr(t)
	router := &hostRouter{routes: map[string]Upstream{
		"dead.test:8080":       {Addr: dead},
		"dead.test:8080 retry": {Addr: dead},
	}}
	proxy := startProxy(t, &Server{Router: router, Limits: Limits{MaxAttempts: 2}})
	client := h2cClient(t)

	t.Run("connect failures on every attempt give a 503 after MaxAttempts", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+proxy+"/", nil)
		req.Host = "dead.test:8080"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("X-Meshentry-Reason") != "upstream connect failed" {
			t.Errorf("got %d reason %q, want 503 upstream connect failed", resp.StatusCode, resp.Header.Get("X-Meshentry-Reason"))
		}
		var attempts int
		for _, c := range router.calls() {
			if strings.HasPrefix(c, "dead.test:8080 ") {
				attempts++
			}
		}
		if attempts != 2 {
			t.Errorf("routed %d times, want MaxAttempts = 2", attempts)
		}
	})
	t.Run("an unknown authority gets the router's reject", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+proxy+"/", nil)
		req.Host = "other.test:8080"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body)
		want := "unknown host; request id " + resp.Header.Get("X-Request-Id") + "\n"
		if resp.StatusCode != 404 || string(got) != want ||
			resp.Header.Get("X-Meshentry-Reason") != "no route to other.test:8080" {
			t.Errorf("got %d %q reason %q", resp.StatusCode, got, resp.Header.Get("X-Meshentry-Reason"))
		}
	})
}

func TestHTTP2RefusesBadAuthorities(t *testing.T) {
	router := &hostRouter{}
	proxy := startProxy(t, &Server{Router: router})
	// The HTTP/2 layer itself resets a stream whose authority is no URL host (status 0
	// here); the engine answers the rest with a 400. Either way nothing is routed.
	tests := []struct {
		name       string
		authority  string
		wantStatus int
	}{
		{name: "an IPv6 literal with a zone", authority: "[fe80::1%eth0]:80", wantStatus: 400},
		{name: "an escaped zone", authority: "[fe80::1%25eth0]:80", wantStatus: 400},
		{name: "a port out of range", authority: "web.test:70000", wantStatus: 400},
		{name: "a host with a space", authority: "bad host:80", wantStatus: 0},
		{name: "userinfo", authority: "user@web.test:80", wantStatus: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused and never routed", func(t *testing.T) {
			before := len(router.calls())
			st := rawH2Get(t, proxy, tt.authority, "/")
			if st != tt.wantStatus {
				t.Errorf("got status %d, want %d", st, tt.wantStatus)
			}
			if n := len(router.calls()); n != before {
				t.Errorf("router was called: %q", router.calls()[before:])
			}
		})
	}
}

// rawH2Get sends one GET with the given :authority on a new prior-knowledge connection,
// written frame by frame so that no client library cleans the authority up first, and
// returns the response status, or 0 when the stream was reset.
func rawH2Get(t *testing.T, addr, authority, path string) int {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatalf("write preface: %v", err)
	}
	fr := http2.NewFramer(nc, nc)
	fr.ReadMetaHeaders = hpackDecoder()
	if err := fr.WriteSettings(); err != nil {
		t.Fatalf("write settings: %v", err)
	}
	block := hpackBlock(":method", "GET", ":scheme", "http", ":authority", authority, ":path", path)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatalf("write headers: %v", err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				var st int
				fmt.Sscan(f.PseudoValue("status"), &st)
				return st
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return 0
			}
		case *http2.GoAwayFrame:
			t.Fatalf("connection closed with GOAWAY %v", f.ErrCode)
		}
	}
}

func hpackDecoder() *hpack.Decoder { return hpack.NewDecoder(4096, nil) }

// hpackBlock encodes name, value pairs as a header block.
func hpackBlock(pairs ...string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: pairs[i], Value: pairs[i+1]})
	}
	return buf.Bytes()
}

// origDstConn reports a chosen local address, as a captured connection reports the
// destination the application dialled.
type origDstConn struct {
	net.Conn
	local net.Addr
}

func (c *origDstConn) LocalAddr() net.Addr { return c.local }

func TestHTTP2PriorKnowledgeThroughServeConn(t *testing.T) {
	grpcAddr := startGRPCBackend(t)
	vip := &net.TCPAddr{IP: net.IPv4(240, 240, 0, 7), Port: 50051}
	var mu sync.Mutex
	var seen []string
	router := RouterFunc(func(req *RequestHead, _ int) (Upstream, *Reject) {
		mu.Lock()
		seen = append(seen, req.LocalAddr.String()+" "+req.Host)
		mu.Unlock()
		if req.LocalAddr.String() != vip.String() {
			return Upstream{}, &Reject{Status: 404, Reason: "not a declared address"}
		}
		return Upstream{Addr: grpcAddr, Protocol: H2C}, nil
	})
	var records []string
	srv := &Server{Router: router, AccessLog: func(r *AccessRecord) {
		mu.Lock()
		records = append(records, fmt.Sprintf("%d %s id=%d", r.Status, r.Upstream, len(r.RequestID)))
		mu.Unlock()
	}}
	ln := listen(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(context.Background(), &origDstConn{Conn: nc, local: vip})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		srv.Close()
		wg.Wait()
	})

	cc := grpcClient(t, ln.Addr().String(), "echo.test:50051")
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(withTimeout(t), "/meshentry.test.Echo/Unary", wrapperspb.String("vip"), out); err != nil {
		t.Fatalf("unary call through a captured connection: %v", err)
	}
	if out.Value != "echo:vip" {
		t.Errorf("got %q, want echo:vip", out.Value)
	}
	cc.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != vip.String()+" echo.test" {
		t.Errorf("router saw %q, want the original destination %s and host echo.test", seen, vip)
	}
	if want := fmt.Sprintf("200 %s id=36", grpcAddr); len(records) != 1 || records[0] != want {
		t.Errorf("access log %q, want [%q]", records, want)
	}
}
