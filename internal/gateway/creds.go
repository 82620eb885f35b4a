package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshentry/meshentry/internal/identity/ca"
)

// Files of a credential folder, as a Kubernetes TLS secret mounts them.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// credDebounce is the quiet time after a change event before a credential folder is re-read;
// credInterval the periodic re-read that catches what no event reported.
const (
	credDebounce = 250 * time.Millisecond
	credInterval = 30 * time.Second
)

// Credential is one reading of a credential folder: the server certificate and, when the folder
// has ca.crt, the roots that client certificates must chain to (MUTUAL).
type Credential struct {
	Cert  *tls.Certificate
	Roots *x509.CertPool
	// digest identifies the contents read, so an unchanged folder is not parsed again.
	digest [sha256.Size]byte
}

// Credentials are the credentialName folders under one directory, read once when first named
// and re-read when they change, so a renewed certificate serves new handshakes without a restart.
type Credentials struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*atomic.Pointer[Credential]
	// watcher is Run's, nil when Run is not running; Get adds a folder named later to it.
	watcher *fsnotify.Watcher

	reloads, reloadErrors atomic.Uint64
}

// NewCredentials serves the credential folders under dir; an empty dir has none.
func NewCredentials(dir string, log *slog.Logger) *Credentials {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Credentials{dir: dir, log: log, entries: map[string]*atomic.Pointer[Credential]{}}
}

// Reloads counts credentials swapped in after their first reading.
func (c *Credentials) Reloads() uint64 { return c.reloads.Load() }

// ReloadErrors counts folders that changed but failed to load (the old credential stays).
func (c *Credentials) ReloadErrors() uint64 { return c.reloadErrors.Load() }

// Get returns the current credential of name, reading its folder the first time; the pointer it
// returns follows later reloads.
func (c *Credentials) Get(name string) (*atomic.Pointer[Credential], error) {
	if c.dir == "" {
		return nil, fmt.Errorf("credentialName %q: no --credentials-dir to read it from", name)
	}
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return nil, fmt.Errorf("credentialName %q is not a folder name", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.entries[name]; ok {
		return p, nil
	}
	cred, err := readCredential(filepath.Join(c.dir, name))
	if err != nil {
		return nil, err
	}
	p := new(atomic.Pointer[Credential])
	p.Store(cred)
	c.entries[name] = p
	if c.watcher != nil {
		if err := c.watcher.Add(filepath.Join(c.dir, name)); err != nil {
			c.log.Warn("cannot watch a gateway credential folder; it is re-read periodically only", "credential", name, "err", err)
		}
	}
	return p, nil
}

// readCredential reads and checks one folder: the key must be the certificate's; ca.crt is
// optional (SIMPLE needs none).
func readCredential(dir string) (*Credential, error) {
	cred, err := readFiles(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile), filepath.Join(dir, CAFile))
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", dir, err)
	}
	return cred, nil
}

// readFiles reads a certificate, its key and an optional CA file (empty path or missing: none).
func readFiles(certPath, keyPath, caPath string) (*Credential, error) {
	cert, err := ca.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	key, err := ca.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	var roots []byte
	if caPath != "" {
		roots, err = ca.ReadFile(caPath)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("CA certificates: %w", err)
		}
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", certPath, keyPath, err)
	}
	cred := &Credential{Cert: &pair, digest: sha256.Sum256(bytes.Join([][]byte{cert, key, roots}, []byte{0}))}
	if len(roots) > 0 {
		cred.Roots = x509.NewCertPool()
		if !cred.Roots.AppendCertsFromPEM(roots) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caPath)
		}
	}
	return cred, nil
}

// Reload re-reads every folder named so far, swapping in those that changed and verify; a bad
// folder keeps its old credential, is logged and counted.
func (c *Credentials) Reload() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, p := range c.entries {
		dir := filepath.Join(c.dir, name)
		cred, err := readCredential(dir)
		if err != nil {
			c.reloadErrors.Add(1)
			c.log.Error("gateway credential reload failed; keeping the current one", "credential", name, "err", err)
			continue
		}
		if cred.digest == p.Load().digest {
			continue
		}
		p.Store(cred)
		c.reloads.Add(1)
		c.log.Info("gateway credential reloaded", "credential", name, "not_after", cred.Cert.Leaf.NotAfter.UTC())
	}
}

// Run follows the folders named so far until ctx ends: a change event restarts a debounce
// timer, and every folder is re-read each credInterval as well (a missed event, no inotify).
func (c *Credentials) Run(ctx context.Context) {
	if c.dir == "" {
		return
	}
	var events <-chan fsnotify.Event
	w, err := fsnotify.NewWatcher()
	if err == nil {
		defer w.Close()
		c.mu.Lock()
		// The folders, not the files: a renewal renames files in, or swaps a symlinked folder.
		for name := range c.entries {
			if err = w.Add(filepath.Join(c.dir, name)); err != nil {
				break
			}
		}
		if err == nil {
			err = w.Add(c.dir)
		}
		if err == nil {
			c.watcher = w
			defer func() {
				c.mu.Lock()
				c.watcher = nil
				c.mu.Unlock()
			}()
		}
		c.mu.Unlock()
		events = w.Events
	}
	if err != nil {
		c.log.Warn("cannot watch the credentials directory; re-reading it periodically only", "dir", c.dir, "err", err)
	}
	c.Reload() // a change between Get and the watch raised no event we saw
	tick := time.NewTicker(credInterval)
	defer tick.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op != fsnotify.Chmod {
				debounce.Reset(credDebounce)
			}
		case <-debounce.C:
			c.Reload()
		case <-tick.C:
			c.Reload()
		}
	}
}
