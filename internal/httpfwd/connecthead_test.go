package httpfwd

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// onConnect is what OnConnect was handed, as TestConnectHeadAsTheEngine records it.
type onConnect struct {
	host     string
	port     int
	id       string
	buffered string
}

// TestConnectHeadAsTheEngine judges heads as the engine does: a head ConnectHead takes is one
// the engine hands to OnConnect, with the same host, port and request id (when the client sent
// one), and a head it leaves to the engine is one the engine answers itself.
func TestConnectHeadAsTheEngine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		raw      string
		wantMore bool
		wantHead bool
	}{
		{name: "takes a CONNECT with its Host", raw: "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", wantHead: true},
		{name: "takes the client's request id", raw: "CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-1\r\n\r\n", wantHead: true},
		{name: "takes an HTTP/1.0 CONNECT without Host", raw: "CONNECT 10.0.0.1:8443 HTTP/1.0\r\n\r\n", wantHead: true},
		{name: "takes a CONNECT whose tunnel bytes follow in the same write", raw: "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n\x16\x03\x01", wantHead: true},
		{name: "leaves a CONNECT without Host in HTTP/1.1", raw: "CONNECT a.example:443 HTTP/1.1\r\n\r\n"},
		{name: "leaves a CONNECT that came through this proxy", raw: "CONNECT a:1 HTTP/1.1\r\nHost: a\r\nVia: 1.1 me\r\n\r\n"},
		{name: "leaves a zoned IPv6 authority", raw: "CONNECT [::1%25x]:443 HTTP/1.1\r\nHost: x\r\n\r\n"},
		{name: "leaves a head over MaxHeaders", raw: "CONNECT a:1 HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"},
		{name: "leaves a head over MaxHeaderBytes", raw: "CONNECT a:1 HTTP/1.1\r\nHost: a\r\nA: " + strings.Repeat("x", 200) + "\r\n\r\n"},
		{name: "leaves another method", raw: "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "leaves a lower-case connect", raw: "connect a:1 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{name: "waits for the rest of CONNECT", raw: "CONN", wantMore: true},
		{name: "waits for the rest of the head", raw: "CONNECT a:1 HTTP/1.1\r\nHost: a", wantMore: true},
		{name: "waits for nothing once an incomplete head is over MaxHeaderBytes", raw: "CONNECT a:1 HTTP/1.1\r\nA: " + strings.Repeat("x", 200)},
	}
	handed := make(chan onConnect, 1)
	srv := &Server{Router: staticRouter("127.0.0.1:1"), ViaToken: "me", Limits: Limits{MaxHeaders: 3, MaxHeaderBytes: 200},
		OnConnect: func(_ context.Context, h *RequestHead, nc net.Conn, buffered []byte) {
			handed <- onConnect{host: h.Host, port: h.Port, id: string(h.RequestID), buffered: string(buffered)}
			nc.Close()
		}}
	addr := startProxy(t, srv)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head, n, more := srv.ConnectHead([]byte(tt.raw))
			if more != tt.wantMore || (head != nil) != tt.wantHead {
				t.Fatalf("ConnectHead: head %v, more %v; want head %v, more %v", head != nil, more, tt.wantHead, tt.wantMore)
			}
			if tt.wantMore {
				return
			}
			c := dial(t, addr)
			c.send(tt.raw)
			c.nc.(*net.TCPConn).CloseWrite()
			var got *onConnect
			answer, _ := io.ReadAll(c.br)
			select {
			case h := <-handed:
				got = &h
			case <-time.After(100 * time.Millisecond):
			}
			switch {
			case (got != nil) != tt.wantHead:
				t.Fatalf("the engine handed it to OnConnect: %v (answer %q)", got != nil, answer)
			case got == nil:
				if len(answer) == 0 {
					t.Error("the engine did not answer the head it kept")
				}
				return
			}
			if head.Host != got.host || head.Port != got.port || got.buffered != tt.raw[n:] {
				t.Errorf("ConnectHead %s:%d and %q after the head, the engine %+v", head.Host, head.Port, tt.raw[n:], *got)
			}
			if sent := bytes.Contains([]byte(tt.raw), []byte("X-Request-Id")); sent && string(head.RequestID) != got.id ||
				len(head.RequestID) != len(got.id) {
				t.Errorf("request id %q, the engine's %q", head.RequestID, got.id)
			}
		})
	}
}

// TestConnectHeadIntoReuses parses heads one after another into one RequestHead, as an event
// loop does: each comes out as ConnectHead's would, none of the previous head left in it, and
// a head seen before allocates nothing.
func TestConnectHeadIntoReuses(t *testing.T) {
	srv := &Server{Router: staticRouter("127.0.0.1:1")}
	heads := []string{
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\nX-Request-Id: first-id\r\n\r\n",
		"CONNECT B.Example:8443 HTTP/1.1\r\nHost: b\r\n\r\n",
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\nX-Request-Id: second\r\n\r\ntunnel bytes",
		"CONNECT 10.0.0.1:1 HTTP/1.0\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	}
	var into RequestHead
	for _, raw := range heads {
		want, wantN, _ := srv.ConnectHead([]byte(raw))
		got, n, _ := srv.ConnectHeadInto([]byte(raw), &into)
		if (got != nil) != (want != nil) || n != wantN {
			t.Fatalf("%q: head %v (%d bytes), ConnectHead's %v (%d)", raw, got != nil, n, want != nil, wantN)
		}
		if got == nil {
			continue
		}
		if got != &into || got.Host != want.Host || got.Port != want.Port {
			t.Errorf("%q: %s:%d, ConnectHead's %s:%d", raw, got.Host, got.Port, want.Host, want.Port)
		}
		sent := bytes.Contains([]byte(raw), []byte("X-Request-Id"))
		if sent && !bytes.Equal(got.RequestID, want.RequestID) || !sent && got.RequestID != nil {
			t.Errorf("%q: request id %q, ConnectHead's %q", raw, got.RequestID, want.RequestID)
		}
	}
	raw := []byte(heads[1])
	if allocs := testing.AllocsPerRun(100, func() { srv.ConnectHeadInto(raw, &into) }); allocs != 0 {
		t.Errorf("ConnectHeadInto allocates %v times per head seen before", allocs)
	}
}
