package identity

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// source loads the identity in dir.
func source(t *testing.T, dir string) *Source {
	t.Helper()
	s, err := NewSource(Options{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testLogger writes to the test's output, shown only when it fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// rawCert is a TLS certificate straight from an identity directory, without the checks Load makes,
// for peers that must present what a Source would refuse (an expired certificate).
func rawCert(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ca.CertChainFile), filepath.Join(dir, ca.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// serverResult is what the server side saw of one connection.
type serverResult struct {
	err   error
	state tls.ConnectionState
}

// tlsServer accepts TLS connections on 127.0.0.1:0 with cfg, reports each handshake on the
// returned channel (while the test reads it) and then echoes bytes until the client closes.
func tlsServer(t *testing.T, cfg *tls.Config) (string, <-chan serverResult) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan serverResult, 16)
	closing := make(chan struct{})
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				tc := c.(*tls.Conn)
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				err := tc.Handshake()
				select {
				case results <- serverResult{err: err, state: tc.ConnectionState()}:
				case <-closing:
					return
				}
				if err == nil {
					io.Copy(tc, tc)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(closing)
		<-done
		conns.Wait()
	})
	return ln.Addr().String(), results
}

// dial opens a TLS connection to addr with cfg and finishes the handshake.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
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

// echo writes msg and reads it back, which is what proves the server accepted the client too:
// under TLS 1.3 the client's handshake ends before the server has checked the client certificate.
func echo(c *tls.Conn, msg string) error {
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

// waitFor polls cond until it holds or the deadline passes; the generous deadline is for a loaded
// CI machine, and polling keeps the fast case fast.
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

// writeFile replaces a file in place, non-atomically, as a careless tool would.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
