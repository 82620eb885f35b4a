package httpfwd

import (
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

func TestViaNamesEachProxyInAChain(t *testing.T) {
	t.Parallel()
	echo := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Via", strings.Join(r.Header.Values("Via"), ", "))
	}
	h1, h2 := startBackend(t, echo), startH2CBackend(t, echo)
	pool := &Pool{}
	t.Cleanup(func() { pool.Close() })
	tests := []struct {
		name, via string
		proto     Protocol
		want      string // with A and B for the two proxies' tokens
	}{
		{name: "adds both proxies of a chain to a request without Via", want: "1.1 A, 1.1 B"},
		{name: "appends both proxies to the client's Via", via: "Via: 1.0 fred, 1.1 p.example (Proxy)\r\n",
			want: "1.0 fred, 1.1 p.example (Proxy), 1.1 A, 1.1 B"},
		{name: "appends both proxies over h2c", proto: H2C, via: "Via: 1.0 fred\r\n", want: "1.0 fred, 1.1 A, 1.1 B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := h1.addr()
			if tt.proto == H2C {
				addr = h2.addr()
			}
			// The second proxy stands for another process, which draws its own token.
			second := &Server{Router: RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				return Upstream{Addr: addr, Protocol: tt.proto}, nil
			}), Pool: pool, ViaToken: newViaToken()}
			first := &Server{Router: staticRouter(startProxy(t, second))}
			resp := dial(t, startProxy(t, first)).roundTrip("GET / HTTP/1.1\r\nHost: a\r\n" + tt.via + "\r\n")
			want := strings.NewReplacer("A", first.via, "B", second.via).Replace(tt.want)
			if got := resp.Header.Get("X-Seen-Via"); resp.StatusCode != 200 || got != want {
				t.Errorf("got %d, upstream saw Via %q, want %q", resp.StatusCode, got, want)
			}
			if first.via == second.via || !regexp.MustCompile(`^meshentry-[0-9a-f]{16}$`).MatchString(first.via) {
				t.Errorf("tokens %q and %q, want two different meshentry-<hex>", first.via, second.via)
			}
		})
	}
}

func TestForwardingLoopIsAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		token string
	}{
		{name: "answers 508 to a request routed back to its own listener"},
		{name: "answers 508 with a configured token", token: "edge-proxy-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln := listen(t)
			var routed atomic.Int64
			srv := &Server{ViaToken: tt.token, Router: RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
				if routed.Add(1) > 10 {
					// Bounds the loop when detection fails, so the test ends.
					return Upstream{}, &Reject{Status: 500, Body: "looped\n"}
				}
				return Upstream{Addr: ln.Addr().String()}, nil
			})}
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ln) }()
			t.Cleanup(func() { srv.Close(); <-done; srv.serveGroup.Wait() })
			resp := dial(t, ln.Addr().String()).roundTrip("GET http://" + ln.Addr().String() + "/ HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp.StatusCode != 508 || routed.Load() != 1 {
				t.Errorf("got %d after routing %d times, want 508 after routing once", resp.StatusCode, routed.Load())
			}
			if got := srv.Stats().LoopsDetected; got != 1 {
				t.Errorf("Stats().LoopsDetected = %d, want 1", got)
			}
			if tt.token != "" && srv.via != tt.token {
				t.Errorf("token %q, want the configured %q", srv.via, tt.token)
			}
		})
	}
}

func TestServersOfOneProcessShareTheViaToken(t *testing.T) {
	t.Parallel()
	// A request going from one listener of the process to another and back, as from the
	// forward listener to the capture listener, is a loop too.
	lnA, lnB := listen(t), listen(t)
	var routedA, routedB atomic.Int64
	bounce := func(routed *atomic.Int64, to net.Listener) Router {
		return RouterFunc(func(*RequestHead, int) (Upstream, *Reject) {
			if routed.Add(1) > 10 {
				return Upstream{}, &Reject{Status: 500, Body: "looped\n"}
			}
			return Upstream{Addr: to.Addr().String()}, nil
		})
	}
	a, b := &Server{Router: bounce(&routedA, lnB)}, &Server{Router: bounce(&routedB, lnA)}
	for srv, ln := range map[*Server]net.Listener{a: lnA, b: lnB} {
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close(); <-done; srv.serveGroup.Wait() })
	}
	resp := dial(t, lnA.Addr().String()).roundTrip("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 508 || routedA.Load() != 1 || routedB.Load() != 0 {
		t.Errorf("got %d after routing %d times in A and %d in B, want 508 from B before it routes",
			resp.StatusCode, routedA.Load(), routedB.Load())
	}
}
