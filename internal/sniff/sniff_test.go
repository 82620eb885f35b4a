package sniff

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/netpair"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) { return netpair.TCP(t) }

func TestSniffOverTCP(t *testing.T) {
	t.Parallel()
	hello := captureClientHello(t, &tls.Config{ServerName: "Shop.Example.com", NextProtos: []string{"h2"}})
	bigHeader := "GET / HTTP/1.1\r\nCookie: " + strings.Repeat("c", 3000) + "\r\nHost: late.example.com\r\n\r\n"
	tests := []struct {
		name       string
		chunks     []string // written by the client in order, gap apart
		gap        time.Duration
		closeWrite bool // half-close after the chunks
		timeout    time.Duration
		max        int
		wantKind   Kind
		wantSNI    string
		wantALPN   []string
		wantHost   string
		wantPrefix int // bytes Sniff should have read; -1 for all of them
	}{
		{
			name:     "names the server of a ClientHello",
			chunks:   []string{string(hello)},
			timeout:  5 * time.Second,
			max:      16 << 10,
			wantKind: TLS, wantSNI: "shop.example.com", wantALPN: []string{"h2"}, wantPrefix: -1,
		},
		{
			name:     "waits for a ClientHello that arrives a record at a time",
			chunks:   splitEvery(string(refragment(t, hello, 200)), 205),
			gap:      10 * time.Millisecond,
			timeout:  5 * time.Second,
			max:      16 << 10,
			wantKind: TLS, wantSNI: "shop.example.com", wantALPN: []string{"h2"}, wantPrefix: -1,
		},
		{
			name:     "calls a ClientHello cut short by the client going quiet TCP",
			chunks:   []string{string(hello[:100])},
			timeout:  300 * time.Millisecond,
			max:      16 << 10,
			wantKind: TCP, wantPrefix: -1,
		},
		{
			name:     "names the host of a plain HTTP request",
			chunks:   []string{"GET /cart HTTP/1.1\r\nHost: Shop.Example.com:8080\r\nUser-Agent: t\r\n\r\n"},
			timeout:  5 * time.Second,
			max:      16 << 10,
			wantKind: HTTP, wantHost: "shop.example.com", wantPrefix: -1,
		},
		{
			name:     "waits for a request head that arrives in pieces",
			chunks:   []string{"GE", "T / HTTP/1.1\r\nHo", "st: slow.example.com\r", "\n\r\n"},
			gap:      10 * time.Millisecond,
			timeout:  5 * time.Second,
			max:      16 << 10,
			wantKind: HTTP, wantHost: "slow.example.com", wantPrefix: -1,
		},
		{
			name:     "recognises HTTP/2 with prior knowledge",
			chunks:   []string{string(h2Preface)},
			timeout:  5 * time.Second,
			max:      16 << 10,
			wantKind: HTTP2, wantPrefix: -1,
		},
		{
			name:     "keeps the Host found when the client goes quiet mid-header",
			chunks:   []string{"GET / HTTP/1.1\r\nHost: quiet.example.com\r\nAccept: "},
			timeout:  300 * time.Millisecond,
			max:      16 << 10,
			wantKind: HTTP, wantHost: "quiet.example.com", wantPrefix: -1,
		},
		{
			name:     "stops at max and has no host when the Host header lies beyond it",
			chunks:   []string{bigHeader},
			timeout:  5 * time.Second,
			max:      1024,
			wantKind: HTTP, wantHost: "", wantPrefix: 1024,
		},
		{
			name:     "reads past its first buffer up to max for an oversized header",
			chunks:   []string{bigHeader},
			timeout:  5 * time.Second,
			max:      16 << 10,
			wantKind: HTTP, wantHost: "late.example.com", wantPrefix: -1,
		},
		{
			name:       "classifies what arrived before a half-close",
			chunks:     []string{"GET / HTTP/1.1\r\nHost: closed.example.com\r\n"},
			closeWrite: true,
			timeout:    5 * time.Second,
			max:        16 << 10,
			wantKind:   HTTP, wantHost: "closed.example.com", wantPrefix: -1,
		},
		{
			name:     "calls a binary client-first protocol TCP at once",
			chunks:   []string{"\x00\x00\x00\x08\x04\xd2\x16\x2f"}, // PostgreSQL SSLRequest
			timeout:  5 * time.Second,
			max:      16 << 10,
			wantKind: TCP, wantPrefix: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := tcpPair(t)
			sent := strings.Join(tt.chunks, "")
			writerDone := make(chan error, 1)
			sendTail := make(chan struct{})
			go func() {
				writerDone <- func() error {
					for i, c := range tt.chunks {
						if i > 0 {
							time.Sleep(tt.gap)
						}
						if _, err := client.Write([]byte(c)); err != nil {
							return err
						}
					}
					if tt.closeWrite {
						return client.CloseWrite()
					}
					<-sendTail
					if _, err := client.Write([]byte("TAIL")); err != nil {
						return err
					}
					return client.CloseWrite()
				}()
			}()

			start := time.Now()
			r, err := Sniff(server, tt.timeout, tt.max)
			close(sendTail)
			if err != nil {
				t.Fatalf("Sniff: %v", err)
			}
			if elapsed := time.Since(start); elapsed > tt.timeout+2*time.Second {
				t.Errorf("Sniff took %v with a %v timeout", elapsed, tt.timeout)
			}
			if r.Kind != tt.wantKind || r.SNI != tt.wantSNI || r.Host != tt.wantHost {
				t.Errorf("Sniff = {Kind: %v, SNI: %q, Host: %q}, want {Kind: %v, SNI: %q, Host: %q}",
					r.Kind, r.SNI, r.Host, tt.wantKind, tt.wantSNI, tt.wantHost)
			}
			if !slices.Equal(r.ALPN, tt.wantALPN) {
				t.Errorf("ALPN = %q, want %q", r.ALPN, tt.wantALPN)
			}
			wantPrefix := tt.wantPrefix
			if wantPrefix < 0 {
				wantPrefix = len(sent)
			}
			if string(r.Prefix) != sent[:wantPrefix] {
				t.Errorf("Prefix has %d bytes, want the first %d sent", len(r.Prefix), wantPrefix)
			}

			// Everything the client sent must come out of the wrapper, prefix first, in order.
			got, err := io.ReadAll(r.Conn())
			if err != nil {
				t.Fatalf("read through Conn: %v", err)
			}
			want := sent
			if !tt.closeWrite {
				want += "TAIL"
			}
			if string(got) != want {
				t.Errorf("Conn replayed %d bytes, want %d (the prefix, then the rest)", len(got), len(want))
			}
			if err := <-writerDone; err != nil {
				t.Errorf("client: %v", err)
			}
		})
	}
}

// splitEvery cuts s into pieces of n bytes.
func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

func TestSniffTreatsASilentClientAsServerFirst(t *testing.T) {
	t.Parallel()
	client, server := tcpPair(t)
	const timeout = 200 * time.Millisecond
	start := time.Now()
	r, err := Sniff(server, timeout, 16<<10)
	if err != nil {
		t.Fatalf("Sniff: %v", err)
	}
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("Sniff returned after %v, before its %v timeout", elapsed, timeout)
	}
	if r.Kind != TCP || len(r.Prefix) != 0 {
		t.Fatalf("Sniff = {Kind: %v, Prefix: %d bytes}, want TCP with no prefix", r.Kind, len(r.Prefix))
	}

	// The server speaks first, like MySQL, and the conversation must go on without the sniff deadline.
	clientErr := make(chan error, 1)
	go func() {
		clientErr <- func() error {
			greeting := make([]byte, 5)
			if _, err := io.ReadFull(client, greeting); err != nil {
				return err
			}
			_, err := client.Write([]byte("login"))
			return err
		}()
	}()
	if _, err := r.Conn().Write([]byte("hello")); err != nil {
		t.Fatalf("write greeting: %v", err)
	}
	time.Sleep(timeout) // outlast the sniff deadline, which Sniff must have cleared
	reply := make([]byte, 5)
	if _, err := io.ReadFull(r.Conn(), reply); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	if string(reply) != "login" {
		t.Errorf("reply = %q, want %q", reply, "login")
	}
	if err := <-clientErr; err != nil {
		t.Errorf("client: %v", err)
	}
}

func TestSniffedTLSConnectionCompletesItsHandshake(t *testing.T) {
	t.Parallel()
	const name = "app.example.com"
	cert := selfSignedCert(t, name)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	client, server := tcpPair(t)

	clientErr := make(chan error, 1)
	go func() {
		clientErr <- func() error {
			tc := tls.Client(client, &tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"h2"}})
			if err := tc.Handshake(); err != nil {
				return err
			}
			_, err := tc.Write([]byte("ping"))
			return err
		}()
	}()

	r, err := Sniff(server, 5*time.Second, 16<<10)
	if err != nil {
		t.Fatalf("Sniff: %v", err)
	}
	if r.Kind != TLS || r.SNI != name {
		t.Fatalf("Sniff = {Kind: %v, SNI: %q}, want TLS for %q", r.Kind, r.SNI, name)
	}
	ts := tls.Server(r.Conn(), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err := ts.Handshake(); err != nil {
		t.Fatalf("server handshake over the replayed ClientHello: %v", err)
	}
	if got := ts.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("negotiated %q, want h2", got)
	}
	msg := make([]byte, 4)
	if _, err := io.ReadFull(ts, msg); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(msg) != "ping" {
		t.Errorf("read %q, want ping", msg)
	}
	if err := <-clientErr; err != nil {
		t.Errorf("client: %v", err)
	}
}

func TestSniffRefusesNonPositiveLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		timeout time.Duration
		max     int
	}{
		{name: "refuses a zero timeout", timeout: 0, max: 1024},
		{name: "refuses a zero max", timeout: time.Second, max: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			r, err := Sniff(a, tt.timeout, tt.max)
			if err == nil {
				t.Fatal("Sniff succeeded, want an error")
			}
			if r.Conn() == nil {
				t.Error("Conn is nil after an error; the caller could not close it")
			}
		})
	}
}

// fakeConn is a net.Conn whose reads come from r and whose WriteTo calls are counted.
type fakeConn struct {
	net.Conn
	r        io.Reader
	writeTos int
}

func (c *fakeConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *fakeConn) SetReadDeadline(time.Time) error    { return nil }
func (c *fakeConn) WriteTo(w io.Writer) (int64, error) { c.writeTos++; return io.Copy(w, c.r) }

func TestSniffReturnsReadErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	conn := &fakeConn{r: io.MultiReader(strings.NewReader("GET / HT"), iotestErrReader{boom})}
	r, err := Sniff(conn, time.Second, 1024)
	if !errors.Is(err, boom) {
		t.Fatalf("Sniff error = %v, want %v", err, boom)
	}
	if string(r.Prefix) != "GET / HT" || r.Conn() == nil {
		t.Errorf("Sniff = {Prefix: %q, Conn: %v}, want the bytes read and a Conn to close", r.Prefix, r.Conn())
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

func TestPrefixConn(t *testing.T) {
	t.Parallel()
	t.Run("writes the prefix and then hands the copy to the wrapped connection", func(t *testing.T) {
		t.Parallel()
		inner := &fakeConn{r: strings.NewReader(" world")}
		pc := NewPrefixConn(inner, []byte("hello"))
		var out bytes.Buffer
		n, err := io.Copy(&out, pc)
		if err != nil {
			t.Fatalf("copy: %v", err)
		}
		if out.String() != "hello world" || n != 11 {
			t.Errorf("copied %d bytes %q, want 11 bytes %q", n, out.String(), "hello world")
		}
		if inner.writeTos != 1 {
			t.Errorf("wrapped WriteTo called %d times, want 1 so that TCP can splice", inner.writeTos)
		}
	})
	t.Run("reads the prefix in small pieces", func(t *testing.T) {
		t.Parallel()
		pc := NewPrefixConn(&fakeConn{r: strings.NewReader("cd")}, []byte("ab"))
		var got []byte
		p := make([]byte, 1)
		for {
			n, err := pc.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
		}
		if string(got) != "abcd" {
			t.Errorf("read %q, want %q", got, "abcd")
		}
		if pc.Buffered() != 0 {
			t.Errorf("Buffered = %d after draining, want 0", pc.Buffered())
		}
	})
	t.Run("proxies between TCP connections with the prefix first", func(t *testing.T) {
		t.Parallel()
		client, server := tcpPair(t)
		upstreamClient, upstreamServer := tcpPair(t)
		go func() {
			_, _ = client.Write([]byte("GET / HTTP/1.1\r\nHost: up.example.com\r\n\r\nbody"))
			_ = client.CloseWrite()
		}()
		r, err := Sniff(server, 5*time.Second, 16<<10)
		if err != nil {
			t.Fatalf("Sniff: %v", err)
		}
		tc, ok := r.Conn().TCPConn()
		if !ok || tc != server || r.Conn().Unwrap() != net.Conn(server) {
			t.Fatal("TCPConn and Unwrap do not return the sniffed *net.TCPConn")
		}
		copied := make(chan error, 1)
		go func() {
			_, err := io.Copy(upstreamClient, r.Conn())
			if err == nil {
				err = upstreamClient.CloseWrite()
			}
			copied <- err
		}()
		got, err := io.ReadAll(upstreamServer)
		if err != nil {
			t.Fatalf("upstream read: %v", err)
		}
		if want := "GET / HTTP/1.1\r\nHost: up.example.com\r\n\r\nbody"; string(got) != want {
			t.Errorf("upstream got %q, want %q", got, want)
		}
		if err := <-copied; err != nil {
			t.Errorf("copy: %v", err)
		}
	})
	t.Run("writes through to the wrapped connection however the copy is made", func(t *testing.T) {
		t.Parallel()
		client, server := tcpPair(t)
		pc := NewPrefixConn(server, []byte("unread prefix"))
		go func() {
			_, _ = io.Copy(pc, strings.NewReader("response"))
			_ = pc.CloseWrite()
		}()
		got, err := io.ReadAll(client)
		if err != nil || string(got) != "response" {
			t.Errorf("client read (%q, %v), want (\"response\", nil)", got, err)
		}
		if pc.Buffered() != len("unread prefix") {
			t.Errorf("Buffered = %d, want the prefix untouched by writes", pc.Buffered())
		}
	})
	t.Run("passes a half-close to the wrapped connection", func(t *testing.T) {
		t.Parallel()
		client, server := tcpPair(t)
		if err := NewPrefixConn(server, nil).CloseWrite(); err != nil {
			t.Fatalf("CloseWrite: %v", err)
		}
		if _, err := client.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("client read = %v, want EOF", err)
		}
	})
}

func TestKindString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind Kind
		want string
	}{
		{kind: TCP, want: "tcp"},
		{kind: TLS, want: "tls"},
		{kind: HTTP, want: "http"},
		{kind: HTTP2, want: "http2"},
		{kind: Kind(9), want: "kind(9)"},
	}
	for _, tt := range tests {
		t.Run("names "+tt.want, func(t *testing.T) {
			t.Parallel()
			if got := tt.kind.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
		})
	}
}
