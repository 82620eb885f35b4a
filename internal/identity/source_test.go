package identity

import (
	"context"
	"crypto/tls"
	"github.com/meshentry/meshentry/internal/testutil/pki"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

// running starts s.Run for the test's lifetime and waits for it to return at cleanup.
func running(t *testing.T, s *Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// leafSerial is the serial of the certificate the peer presented on c.
func leafSerial(c *tls.Conn) *big.Int { return c.ConnectionState().PeerCertificates[0].SerialNumber }

func currentSerial(s *Source) *big.Int { return s.Current().SVID.Certificates[0].SerialNumber }

func TestSourceSwapsInRotatedFilesForNewHandshakesOnly(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	serverDir := pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{})
	server, err := NewSource(Options{Dir: serverDir, Debounce: 50 * time.Millisecond, Interval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	running(t, server)
	addr, results := tlsServer(t, server.ServerConfig())
	client := source(t, pki.Issue(t, mesh, "", "shop", "cart", ca.IssueOptions{})).ClientConfig()

	old, err := dial(t, addr, client)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(old, "before"); err != nil {
		t.Fatal(err)
	}
	<-results
	first := leafSerial(old)

	pki.Issue(t, mesh, serverDir, "shop", "payments", ca.IssueOptions{TTL: 5 * time.Hour})
	waitFor(t, "the rotation", func() bool { return server.Status().Rotations == 1 })

	t.Run("a new handshake presents the new certificate", func(t *testing.T) {
		fresh, err := dial(t, addr, client)
		if err != nil {
			t.Fatal(err)
		}
		if err := echo(fresh, "after"); err != nil {
			t.Fatal(err)
		}
		<-results
		if got := leafSerial(fresh); got.Cmp(first) == 0 || got.Cmp(currentSerial(server)) != 0 {
			t.Fatalf("new connection saw serial %s; old was %s, current is %s", got, first, currentSerial(server))
		}
	})
	t.Run("the connection made before the rotation keeps working on its certificate", func(t *testing.T) {
		if err := echo(old, "still here"); err != nil {
			t.Fatal(err)
		}
		if leafSerial(old).Cmp(first) != 0 {
			t.Fatal("the old connection's certificate changed")
		}
	})
	t.Run("the status reports the new expiry", func(t *testing.T) {
		st := server.Status()
		if st.ID.String() != "spiffe://cluster.local/ns/shop/sa/payments" || time.Until(st.NotAfter) < 4*time.Hour {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestSourceKeepsItsIdentityThroughABadRotation(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	stranger := pki.NewCA(t, "cluster.local")
	dir := pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{})
	s, err := NewSource(Options{Dir: dir, Debounce: 50 * time.Millisecond, Interval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	running(t, s)
	addr, results := tlsServer(t, s.ServerConfig())
	client := source(t, pki.Issue(t, mesh, "", "shop", "cart", ca.IssueOptions{})).ClientConfig()
	good := currentSerial(s)
	chain, err := os.ReadFile(filepath.Join(dir, ca.CertChainFile))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		break_ func(t *testing.T)
		want   string
	}{
		{
			name:   "a chain file caught half-written",
			break_: func(t *testing.T) { writeFile(t, filepath.Join(dir, ca.CertChainFile), chain[:len(chain)/2]) },
			want:   "no PEM certificate",
		},
		{
			name: "a chain whose key is not key.pem",
			break_: func(t *testing.T) {
				copyFile(t, filepath.Join(pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{}), ca.CertChainFile), filepath.Join(dir, ca.CertChainFile))
			},
			want: "does not match private key",
		},
		{
			name: "a chain and key from a CA the bundle does not hold",
			break_: func(t *testing.T) {
				from := pki.Issue(t, stranger, "", "shop", "payments", ca.IssueOptions{})
				copyFile(t, filepath.Join(from, ca.KeyFile), filepath.Join(dir, ca.KeyFile))
				copyFile(t, filepath.Join(from, ca.CertChainFile), filepath.Join(dir, ca.CertChainFile))
			},
			want: "unknown authority",
		},
	}
	for _, tt := range tests {
		t.Run("ignores "+tt.name, func(t *testing.T) {
			before := s.Status().RotationErrors
			tt.break_(t)
			waitFor(t, "the failed rotation to be counted", func() bool { return s.Status().RotationErrors > before })
			if st := s.Status(); !strings.Contains(st.LastError, tt.want) || st.Rotations != 0 {
				t.Fatalf("status %+v, want no rotation and a last error containing %q", st, tt.want)
			}
			if currentSerial(s).Cmp(good) != 0 {
				t.Fatal("the identity changed")
			}
			c, err := dial(t, addr, client)
			if err == nil {
				err = echo(c, "ping")
			}
			if res := <-results; err != nil || res.err != nil {
				t.Fatalf("handshake with the kept identity: client %v, server %v", err, res.err)
			}
			if leafSerial(c).Cmp(good) != 0 {
				t.Fatal("the server presented something other than the kept identity")
			}
		})
	}
	t.Run("a good rotation after bad ones is taken and clears the error", func(t *testing.T) {
		pki.Issue(t, mesh, dir, "shop", "payments", ca.IssueOptions{})
		waitFor(t, "the rotation", func() bool { return s.Status().Rotations == 1 })
		if st := s.Status(); st.LastError != "" || currentSerial(s).Cmp(good) == 0 {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestReloadReportsEachBadContentOnce(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	dir := pki.Issue(t, mesh, "", "ns", "sa", ca.IssueOptions{})
	s := source(t, dir)
	steps := []struct {
		name      string
		change    func(t *testing.T)
		wantErr   bool
		rotations uint64
		errors    uint64
	}{
		{name: "an unchanged directory is not a rotation", change: func(*testing.T) {}, rotations: 0, errors: 0},
		{name: "a truncated key is an error", change: func(t *testing.T) {
			writeFile(t, filepath.Join(dir, ca.KeyFile), []byte("-----BEGIN PRIVATE KEY-----\n"))
		}, wantErr: true, rotations: 0, errors: 1},
		{name: "the same bad files are not reported again", change: func(*testing.T) {}, rotations: 0, errors: 1},
		{name: "new good files are a rotation", change: func(t *testing.T) { pki.Issue(t, mesh, dir, "ns", "sa", ca.IssueOptions{}) }, rotations: 1, errors: 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.change(t)
			err := s.Reload()
			if (err != nil) != st.wantErr {
				t.Fatalf("Reload: %v, want error %v", err, st.wantErr)
			}
			if got := s.Status(); got.Rotations != st.rotations || got.RotationErrors != st.errors {
				t.Fatalf("rotations %d errors %d, want %d and %d", got.Rotations, got.RotationErrors, st.rotations, st.errors)
			}
		})
	}
}

func TestCheckReportsAnExpiredIdentity(t *testing.T) {
	t.Parallel()
	s := source(t, pki.Issue(t, pki.NewCA(t, "cluster.local"), "", "ns", "sa", ca.IssueOptions{TTL: time.Hour}))
	if err := s.Check(time.Now()); err != nil {
		t.Fatalf("a fresh identity: %v", err)
	}
	err := s.Check(time.Now().Add(2 * time.Hour))
	if err == nil || !strings.Contains(err.Error(), "spiffe://cluster.local/ns/ns/sa/sa") || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("two hours on: %v", err)
	}
}

// TestSourceFollowsAKubernetesStyleSymlinkSwap rotates the files the way the kubelet updates a
// mounted Secret: the three names are symlinks through ..data, and a rotation writes a new folder
// and renames a new ..data symlink over the old one. No watched file is written at all.
func TestSourceFollowsAKubernetesStyleSymlinkSwap(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	dir := t.TempDir()
	publish := func(t *testing.T, version string) {
		t.Helper()
		pki.Issue(t, mesh, filepath.Join(dir, version), "shop", "payments", ca.IssueOptions{})
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(version, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, "..v1")
	for _, name := range []string{ca.CertChainFile, ca.KeyFile, ca.RootCertFile} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := NewSource(Options{Dir: dir, Debounce: 50 * time.Millisecond, Interval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	running(t, s)
	first := currentSerial(s)
	publish(t, "..v2")
	waitFor(t, "the rotation", func() bool { return s.Status().Rotations == 1 })
	if currentSerial(s).Cmp(first) == 0 {
		t.Fatal("rotated to the same certificate")
	}
}

// TestAResumedSessionIsCheckedAgainstTheCurrentBundle resumes a TLS session after the server's
// trust bundle rotated to a new CA: the client's certificate, accepted under the old bundle, must
// be refused under the new one rather than ride in on the session ticket.
func TestAResumedSessionIsCheckedAgainstTheCurrentBundle(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	dir := pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{})
	server, err := NewSource(Options{Dir: dir, Debounce: 50 * time.Millisecond, Interval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	running(t, server)
	addr, results := tlsServer(t, server.ServerConfig())
	client := source(t, pki.Issue(t, mesh, "", "shop", "cart", ca.IssueOptions{})).ClientConfig()
	client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	connect := func(t *testing.T) (*tls.Conn, error, serverResult) {
		t.Helper()
		c, err := dial(t, addr, client)
		if err == nil {
			err = echo(c, "ping")
		}
		return c, err, <-results
	}
	if _, err, res := connect(t); err != nil || res.err != nil {
		t.Fatalf("first connection: client %v, server %v", err, res.err)
	}
	t.Run("a second connection resumes the session", func(t *testing.T) {
		c, err, res := connect(t)
		if err != nil || res.err != nil || !c.ConnectionState().DidResume {
			t.Fatalf("client %v, server %v, resumed %v", err, res.err, err == nil && c.ConnectionState().DidResume)
		}
	})
	t.Run("after the bundle rotates a resumed session is refused", func(t *testing.T) {
		pki.Issue(t, pki.NewCA(t, "cluster.local"), dir, "shop", "payments", ca.IssueOptions{})
		waitFor(t, "the rotation", func() bool { return server.Status().Rotations == 1 })
		_, err, res := connect(t)
		if err == nil {
			t.Fatal("the client's connection worked")
		}
		checkPeerError(t, "server", res.err, "unknown authority", "spiffe://cluster.local/ns/shop/sa/cart", "any identity in trust domain cluster.local")
	})
}

// syncBuffer is a log destination safe for the Source's goroutine and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestSourceLogsOnceWhenItsIdentityExpires(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	// Certificate times have one-second resolution: three seconds leave it valid at load time with
	// two seconds to spare on a loaded machine.
	dir := pki.Issue(t, pki.NewCA(t, "cluster.local"), "", "ns", "sa", ca.IssueOptions{TTL: 3 * time.Second})
	s, err := NewSource(Options{Dir: dir, Interval: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	running(t, s)
	waitFor(t, "the expiry to be logged", func() bool { return strings.Contains(logs.String(), "identity expired") })
	time.Sleep(200 * time.Millisecond) // four more periodic checks
	if n := strings.Count(logs.String(), "identity expired"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestHandshakesDuringRotationsAlwaysSeeACompleteIdentity keeps clients handshaking while the
// server's files are rotated again and again: every handshake must succeed, because a rotation is
// swapped in whole or not at all.
func TestHandshakesDuringRotationsAlwaysSeeACompleteIdentity(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	dir := pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{})
	server, err := NewSource(Options{Dir: dir, Debounce: 5 * time.Millisecond, Interval: time.Hour, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	running(t, server)
	addr, results := tlsServer(t, server.ServerConfig())
	client := source(t, pki.Issue(t, mesh, "", "shop", "cart", ca.IssueOptions{})).ClientConfig()
	const rotations = 10
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // drained so the server never waits on it; the clients see any refusal
		defer wg.Done()
		for {
			select {
			case <-results:
			case <-stop:
				return
			}
		}
	}()
	var handshakes, failures atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, client)
				if err == nil {
					c.SetDeadline(time.Now().Add(5 * time.Second))
					err = echo(c, "x")
					c.Close()
				}
				handshakes.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("handshake during rotation: %v", err)
				}
			}
		}()
	}
	for i := range rotations {
		pki.Issue(t, mesh, dir, "shop", "payments", ca.IssueOptions{})
		waitFor(t, "the rotation", func() bool { return server.Status().Rotations >= uint64(i+1) })
	}
	close(stop)
	wg.Wait()
	t.Logf("%d handshakes across %d rotations, %d failed", handshakes.Load(), rotations, failures.Load())
	if handshakes.Load() < rotations {
		t.Fatalf("only %d handshakes ran", handshakes.Load())
	}
}

// TestSourceFallsBackToPeriodicChecksWhenItCannotWatch starts Run while the directory is missing,
// so the watch fails; the periodic re-read must still pick up the rotated files once they appear.
func TestSourceFallsBackToPeriodicChecksWhenItCannotWatch(t *testing.T) {
	t.Parallel()
	mesh := pki.NewCA(t, "cluster.local")
	dir := pki.Issue(t, mesh, "", "shop", "payments", ca.IssueOptions{})
	s, err := NewSource(Options{Dir: dir, Interval: 50 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	away := dir + ".away"
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	running(t, s)
	waitFor(t, "the missing directory to be noticed", func() bool { return s.Status().RotationErrors >= 1 })
	first := currentSerial(s)
	pki.Issue(t, mesh, away, "shop", "payments", ca.IssueOptions{})
	if err := os.Rename(away, dir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the periodic check to rotate", func() bool { return s.Status().Rotations == 1 })
	if currentSerial(s).Cmp(first) == 0 {
		t.Fatal("rotated to the same certificate")
	}
}
