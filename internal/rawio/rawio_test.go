package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/netpair"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (near, far net.Conn) { return netpair.Sockets(t, "tcp", "127.0.0.1:0") }

func TestSocketReadsAndWritesTheSocketRaw(t *testing.T) {
	near, far := tcpPair(t)
	var s Socket
	s.Bind(near)
	if want := runtime.GOOS == "linux"; (s.Raw()) != want {
		t.Fatalf("raw path in use = %v, want %v on %s", s.Raw(), want, runtime.GOOS)
	}

	// A write far larger than the socket buffers waits for room, more than once, and a read
	// waits for bytes; both run at once, as a streamed body and a response do.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	wrote := make(chan error, 1)
	go func() {
		n, err := s.Write(big)
		if err == nil && n != len(big) {
			err = io.ErrShortWrite
		}
		wrote <- err
	}()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(far, int64(len(big))))
		got <- b
	}()
	if _, err := far.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("Read = %q, %v; want \"ping\"", buf[:n], err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer got %d bytes, not the %d written", len(b), len(big))
	}
}

func TestSocketErrorsAreTheConnections(t *testing.T) {
	tests := []struct {
		name  string
		setup func(near, far net.Conn)
		check func(n int, err error) bool
		want  string
	}{
		{"deadline", func(near, far net.Conn) { near.SetReadDeadline(time.Now().Add(20 * time.Millisecond)) },
			func(n int, err error) bool { return n == 0 && isTimeout(err) }, "a timeout"},
		{"peer closed", func(near, far net.Conn) { far.Close() },
			func(n int, err error) bool { return n == 0 && err == io.EOF }, "io.EOF"},
		{"closed here", func(near, far net.Conn) { near.Close() },
			func(n int, err error) bool { return n == 0 && errors.Is(err, net.ErrClosed) }, "net.ErrClosed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			near, far := tcpPair(t)
			var s Socket
			s.Bind(near)
			tt.setup(near, far)
			n, err := s.Read(make([]byte, 8))
			if !tt.check(n, err) {
				t.Fatalf("Read = %d, %v; want %s", n, err, tt.want)
			}
		})
	}
}

func TestSocketUsesTheConnectionWhenItIsNoSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var s Socket
	s.Bind(a)
	if s.Raw() {
		t.Fatal("a pipe has no socket, but the raw path was taken")
	}
	go b.Write([]byte("hi"))
	buf := make([]byte, 4)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestSocketHeldWriteGoesOutWithTheNextRead(t *testing.T) {
	tests := []struct {
		name string
		req  []byte
	}{
		{"a request that fits the socket", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"a request larger than the socket buffers", bytes.Repeat([]byte("x"), 8<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			near, far := tcpPair(t)
			var s Socket
			s.Bind(near)
			if !s.HoldWrite() {
				t.Skip("no raw socket on " + runtime.GOOS)
			}
			// The peer answers as soon as the whole request is in, as an upstream does.
			go func() {
				if _, err := io.ReadFull(far, make([]byte, len(tt.req))); err == nil {
					far.Write([]byte("answer"))
				}
			}()
			if n, err := s.Write(tt.req); n != len(tt.req) || err != nil {
				t.Fatalf("held Write = %d, %v", n, err)
			}
			s.Unhold()
			if !s.Holding() {
				t.Fatal("the write went out before the read")
			}
			near.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 16)
			n, err := s.Read(buf)
			if err != nil || string(buf[:n]) != "answer" {
				t.Fatalf("Read after the held write = %q, %v; want \"answer\"", buf[:n], err)
			}
			if s.Holding() {
				t.Fatal("still holding after the read")
			}
		})
	}
}

func TestSocketUnholdWritesAtOnce(t *testing.T) {
	near, far := tcpPair(t)
	var s Socket
	s.Bind(near)
	s.HoldWrite()
	s.Unhold()
	if _, err := s.Write([]byte("now")); err != nil {
		t.Fatal(err)
	}
	far.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 3)
	if _, err := io.ReadFull(far, buf); err != nil || string(buf) != "now" {
		t.Fatalf("peer read %q, %v; the write after Unhold did not go out", buf, err)
	}
}

func TestSocketHeldWriteToAClosedPeerFails(t *testing.T) {
	near, far := tcpPair(t)
	var s Socket
	s.Bind(near)
	if !s.HoldWrite() {
		t.Skip("no raw socket on " + runtime.GOOS)
	}
	far.(*net.TCPConn).SetLinger(0)
	far.Close() // a reset: the send or the read fails
	time.Sleep(50 * time.Millisecond)
	s.Write([]byte("request"))
	s.Unhold()
	near.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := s.Read(make([]byte, 8)); err == nil || isTimeout(err) {
		t.Fatalf("Read = %d, %v; want the reset", n, err)
	}
}

func TestSocketReadNowNeverWaits(t *testing.T) {
	near, far := tcpPair(t)
	var s Socket
	s.Bind(near)
	if !s.Raw() {
		t.Skip("no raw socket on " + runtime.GOOS)
	}
	buf := make([]byte, 8)
	if n, err := s.ReadNow(buf); n != 0 || err != ErrNothingYet {
		t.Fatalf("ReadNow on an empty socket = %d, %v; want ErrNothingYet", n, err)
	}
	far.Write([]byte("body"))
	near.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := s.Read(buf[:1]); n != 1 || err != nil {
		t.Fatalf("Read after ReadNow = %d, %v; the readiness was lost", n, err)
	}
	if n, err := s.ReadNow(buf); err != nil || string(buf[:n]) != "ody" {
		t.Fatalf("ReadNow with bytes waiting = %q, %v", buf[:n], err)
	}
}
