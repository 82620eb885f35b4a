package identity

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Defaults for watching an identity directory.
const (
	// DefaultDebounce is how long the directory must be quiet after a change before it is read:
	// long enough to cover the renames of one rotation, short enough that a new handshake soon
	// uses the new identity.
	DefaultDebounce = 250 * time.Millisecond
	// DefaultInterval is the periodic re-read that catches changes no event reported (a directory
	// replaced wholesale, a filesystem without inotify).
	DefaultInterval = 30 * time.Second
)

// Options configure a Source.
type Options struct {
	// Dir holds cert-chain.pem, key.pem and root-cert.pem.
	Dir string
	// Debounce is the quiet period after a change event; DefaultDebounce when zero.
	Debounce time.Duration
	// Interval is the periodic re-read; DefaultInterval when zero.
	Interval time.Duration
	// Logger receives rotations and failed rotations; slog.Default when nil.
	Logger *slog.Logger
}

// Status is what a readiness check or an admin page reports about the identity.
type Status struct {
	// ID is the current SPIFFE ID.
	ID spiffeid.ID
	// NotAfter is when the current identity expires.
	NotAfter time.Time
	// Rotations counts identities swapped in after the first.
	Rotations uint64
	// RotationErrors counts changed files that failed to load, leaving the old identity in place.
	RotationErrors uint64
	// LastError is the most recent rotation failure, empty when there has been none.
	LastError string
}

// Source is the proxy's current identity, kept up to date with its directory. It implements
// go-spiffe's x509svid.Source and x509bundle.Source, so a TLS config built on it picks up a
// rotation at the next handshake while connections already made keep the certificate they used.
type Source struct {
	opts    Options
	log     *slog.Logger
	current atomic.Pointer[Identity]

	rotations      atomic.Uint64
	rotationErrors atomic.Uint64

	mu sync.Mutex // serialises reloads and guards the fields below
	// tried is the digest of the files last attempted, loaded or not, so the same bad files are
	// reported once rather than at every periodic check.
	tried     [sha256.Size]byte
	lastError string
	// warnedExpired is the identity last reported as expired, so each is reported once.
	warnedExpired *Identity
}

var (
	_ x509svid.Source   = (*Source)(nil)
	_ x509bundle.Source = (*Source)(nil)
)

// NewSource loads the identity in opts.Dir; it fails if the files are missing or do not verify,
// since a proxy without a valid identity cannot do mutual TLS. Call Run to follow rotations.
func NewSource(opts Options) (*Source, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	s := &Source{opts: opts, log: opts.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	id, err := Load(opts.Dir)
	if err != nil {
		return nil, err
	}
	s.current.Store(id)
	s.tried = id.digest
	return s, nil
}

// Current returns the identity in use now.
func (s *Source) Current() *Identity { return s.current.Load() }

// GetX509SVID returns the current SVID; go-spiffe's TLS configs call it at every handshake.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) { return s.current.Load().SVID, nil }

// GetX509BundleForTrustDomain returns the current trust bundle for the identity's own trust
// domain; peers of other trust domains are not trusted (no federation yet).
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.current.Load().Bundle.GetX509BundleForTrustDomain(td)
}

// Status reports the current identity and the rotation counters.
func (s *Source) Status() Status {
	cur := s.current.Load()
	s.mu.Lock()
	last := s.lastError
	s.mu.Unlock()
	return Status{ID: cur.ID(), NotAfter: cur.NotAfter, Rotations: s.rotations.Load(), RotationErrors: s.rotationErrors.Load(), LastError: last}
}

// Check returns an error when the current identity has expired at now, for a readiness check: a
// proxy whose certificate expired can no longer complete a mutual TLS handshake.
func (s *Source) Check(now time.Time) error {
	cur := s.current.Load()
	if now.After(cur.NotAfter) {
		return fmt.Errorf("workload identity %s expired at %s", cur.ID(), cur.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// warnIfExpired logs, once per identity, that the identity in use has expired and nothing has
// replaced it: every mutual TLS handshake fails from then on, and the log should say why.
func (s *Source) warnIfExpired(now time.Time) {
	err := s.Check(now)
	if err == nil {
		return
	}
	cur := s.current.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warnedExpired == cur {
		return
	}
	s.warnedExpired = cur
	s.log.Error("workload identity expired and no valid replacement was found; mutual TLS handshakes will fail",
		"dir", s.opts.Dir, "error", err)
}

// Reload reads the directory now and swaps in its identity if the files changed and verify. An
// unchanged directory is a no-op; a bad one keeps the old identity, is counted and returned.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, err := readFiles(s.opts.Dir)
	if err != nil {
		return s.failLocked(nil, err)
	}
	d := raw.digest()
	if d == s.tried || d == s.current.Load().digest {
		s.tried = d
		return nil
	}
	id, err := parse(s.opts.Dir, raw, time.Now())
	if err != nil {
		return s.failLocked(&d, err)
	}
	s.tried = d
	old := s.current.Swap(id)
	s.rotations.Add(1)
	s.lastError = ""
	s.log.Info("workload identity rotated", "dir", s.opts.Dir, "id", id.ID().String(),
		"not_after", id.NotAfter.UTC(), "previous_not_after", old.NotAfter.UTC())
	return nil
}

// failLocked records a failed reload. A read error (a file missing mid-rotation) is reported each
// time, since no digest identifies it; a parse error once per distinct content.
func (s *Source) failLocked(d *[sha256.Size]byte, err error) error {
	if d != nil {
		s.tried = *d
	}
	s.rotationErrors.Add(1)
	s.lastError = err.Error()
	s.log.Error("workload identity rotation failed; keeping the current identity", "dir", s.opts.Dir,
		"id", s.current.Load().ID().String(), "error", err)
	return err
}

// Run follows the directory until ctx ends: every change event restarts a debounce timer, and the
// directory is also re-read every Interval. If the directory cannot be watched (no inotify, the
// per-user watch limit reached) it logs why and relies on the periodic re-read alone, since a
// proxy that stops on a watch failure would drop traffic a slower reload would not. It returns
// nil when ctx ends.
func (s *Source) Run(ctx context.Context) error {
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	// The directory, not the files: rotations replace files by rename (and Kubernetes swaps a
	// symlinked folder), which a watch on the old file would never see.
	w, err := fsnotify.NewWatcher()
	if err == nil {
		defer w.Close()
		err = w.Add(filepath.Clean(s.opts.Dir))
	}
	if err != nil {
		s.log.Warn("cannot watch the identity directory; re-reading it periodically only", "dir", s.opts.Dir,
			"interval", s.opts.Interval, "error", err)
	} else {
		events, watchErrs = w.Events, w.Errors
	}
	// Files replaced between NewSource and the watch above raised no event we saw: read them now.
	_ = s.Reload()
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil // the watcher is gone; the periodic re-read carries on
				continue
			}
			if ev.Op != fsnotify.Chmod {
				debounce.Reset(s.opts.Debounce)
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			// An overflow means events were lost: read the directory rather than trust them.
			s.log.Warn("identity watch error; re-reading the directory", "dir", s.opts.Dir, "error", err)
			debounce.Reset(s.opts.Debounce)
		case <-debounce.C:
			_ = s.Reload() // failures are counted and logged by Reload
		case <-tick.C:
			_ = s.Reload()
			s.warnIfExpired(time.Now())
		}
	}
}
