package inbound

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/gopool"
	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/identity/ca"
)

func TestMain(m *testing.M) {
	// The process's goroutine pool keeps idle goroutines for the next connection.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(gopool.WaitingFunction))
}

// source loads the identity in dir.
func source(t *testing.T, dir string) *identity.Source {
	t.Helper()
	s, err := identity.NewSource(identity.Options{Dir: dir, Logger: testLogger(t), Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// rawCert is the certificate and key in dir as they are, without the checks a Source makes, for
// clients that must present what a Source would refuse (an expired certificate).
func rawCert(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.CertChainFile), filepath.Join(dir, ca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// leafHash is the SHA-256 of the leaf certificate in dir, lower-case hex, as XFCC's Hash.
func leafHash(t *testing.T, dir string) string {
	t.Helper()
	sum := sha256.Sum256(rawCert(t, dir).Certificate[0])
	return hex.EncodeToString(sum[:])
}

// startInbound serves an inbound listener on 127.0.0.1:0 and shuts it down at cleanup.
func startInbound(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v, want nil after a drain", err)
		}
	})
	return s, ln.Addr().String()
}

// xfccBackend is an HTTP backend that answers with the x-forwarded-client-cert it received and
// counts its requests.
type xfccBackend struct {
	addr     string
	requests atomic.Int64
}

func startXFCCBackend(t *testing.T) *xfccBackend {
	t.Helper()
	b := &xfccBackend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Protocols: protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		w.Header().Set("X-Seen-Proto", r.Proto)
		io.WriteString(w, r.Header.Get("X-Forwarded-Client-Cert"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.addr = ln.Addr().String()
	return b
}

// dialTLS connects to addr with cfg and finishes the client's side of the handshake.
func dialTLS(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, nil
}

// get sends one HTTP/1.1 GET on c and returns the response body.
func get(t *testing.T, c net.Conn, br *bufio.Reader, extra string) (string, error) {
	t.Helper()
	if _, err := io.WriteString(c, "GET /headers HTTP/1.1\r\nHost: httpbin.test\r\n"+extra+"\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("status %d, body %q", resp.StatusCode, b)
	}
	return string(b), err
}

// waitFor polls cond until it holds or a deadline wide enough for a loaded CI machine passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
