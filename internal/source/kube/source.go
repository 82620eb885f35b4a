// Package kube reads ServiceEntry, DestinationRule, VirtualService, Gateway and Sidecar from a
// Kubernetes API server through shared informers, hands them on as config documents (one
// consistent set after the initial list, then debounced updates), and writes what validation
// found back to each object's status. It is the only package that imports client-go.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"istio.io/client-go/pkg/clientset/versioned"
	informers "istio.io/client-go/pkg/informers/externalversions"
	"k8s.io/client-go/tools/cache"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

const (
	// DefaultDebounce is the quiet time after an event before the documents are handed on, as
	// istiod's PILOT_DEBOUNCE_AFTER (100 ms), so that an apply of many objects makes one snapshot.
	DefaultDebounce = 100 * time.Millisecond
	// DefaultMaxDelay bounds the wait for quiet, as istiod's PILOT_DEBOUNCE_MAX (10 s): a cluster
	// that never stops changing still gets a snapshot this often.
	DefaultMaxDelay = 10 * time.Second
)

// Config says where the source reads and how it paces its updates.
type Config struct {
	// Client talks to the API server (a fake clientset in unit tests); nil builds one from
	// Connection.
	Client     versioned.Interface
	Connection Connection
	// Namespace limits the watch to one namespace; empty watches all of them.
	Namespace string
	// Debounce and MaxDelay pace the updates; zero means the defaults.
	Debounce, MaxDelay time.Duration
	// Logger receives the source's lines; nil discards them.
	Logger *slog.Logger
	// WriteStatus makes Report write findings to the objects' status; off, the source needs
	// only get, list and watch.
	WriteStatus bool
	// StatusQPS and StatusBurst bound the status writes; zero means the defaults.
	StatusQPS   float32
	StatusBurst int
}

// Source watches the five kinds and keeps the informers' caches.
type Source struct {
	cfg       Config
	log       *slog.Logger
	factory   informers.SharedInformerFactory
	informers []cache.SharedIndexInformer
	changed   chan struct{}
	status    *statusWriter // nil when status writing is off
	// events counts the informer events seen, so tests and metrics can tell activity apart.
	events  atomic.Uint64
	started atomic.Bool
}

// New builds the informers; nothing is listed until Start.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		c, err := cfg.Connection.Client()
		if err != nil {
			return nil, fmt.Errorf("kube source: %w", err)
		}
		cfg.Client = c
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultMaxDelay
	}
	s := &Source{cfg: cfg, log: cfg.Logger, changed: make(chan struct{}, 1)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// No periodic resync: the documents are rebuilt from the cache on change, and a resync would
	// only wake the debounce with nothing new.
	if cfg.WriteStatus {
		s.status = newStatusWriter(cfg.Client, cfg.StatusQPS, cfg.StatusBurst, s.log)
	}
	s.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace))
	for _, k := range kinds {
		inf := k.informer(s.factory)
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.poke() },
			UpdateFunc: func(any, any) { s.poke() },
			DeleteFunc: func(any) { s.poke() },
		}); err != nil {
			return nil, fmt.Errorf("kube source: watch %s: %w", k.resource, err)
		}
		if err := inf.SetWatchErrorHandler(s.watchError(k.resource)); err != nil {
			return nil, fmt.Errorf("kube source: watch %s: %w", k.resource, err)
		}
		s.informers = append(s.informers, inf)
	}
	return s, nil
}

// watchError logs why a list or watch failed; the reflector retries with backoff and, for a
// watch whose resource version expired (410 Gone), relists into the same cache, so what is
// served stays until the new list replaces it.
func (s *Source) watchError(resource string) cache.WatchErrorHandler {
	return func(_ *cache.Reflector, err error) {
		s.log.Warn("kube watch interrupted; retrying, the last snapshot keeps serving", "resource", resource, "err", err)
	}
}

// poke marks the caches changed without blocking the informer's goroutine.
func (s *Source) poke() {
	s.events.Add(1)
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Start runs the informers until ctx ends and returns once every cache holds its initial list,
// or with an error when that takes longer than wait (0: no limit) or ctx ends first (an API
// server that cannot be reached, say).
func (s *Source) Start(ctx context.Context, wait time.Duration) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("kube source: started twice")
	}
	s.factory.Start(ctx.Done())
	synced := make([]cache.InformerSynced, len(s.informers))
	for i, inf := range s.informers {
		synced[i] = inf.HasSynced
	}
	waitCtx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeoutCause(ctx, wait, fmt.Errorf("no complete list within %v", wait))
		defer cancel()
	}
	if !cache.WaitForCacheSync(waitCtx.Done(), synced...) {
		return fmt.Errorf("kube source: initial list of %s/%s not complete: %w", Group, Version, context.Cause(waitCtx))
	}
	return nil
}

// Stop waits for the informers' goroutines after the ctx given to Start has ended.
func (s *Source) Stop() { s.factory.Shutdown() }

// Documents returns what the caches hold now as config documents, sorted and numbered; each
// call builds a new slice with specs of its own.
func (s *Source) Documents() []*config.Document {
	var docs []*config.Document
	for _, inf := range s.informers {
		for _, obj := range inf.GetStore().List() {
			if o, ok := objectOf(obj); ok {
				docs = append(docs, o.document())
			}
		}
	}
	sortDocuments(docs)
	return docs
}

// statuses returns the status each cached object carries now, keyed by its Position, with the
// generation the status should speak for.
func (s *Source) statuses() map[string]objectStatus {
	out := map[string]objectStatus{}
	for _, inf := range s.informers {
		for _, obj := range inf.GetStore().List() {
			if o, ok := objectOf(obj); ok {
				out[Position(o.meta.Namespace, o.kind, o.meta.Name)] = statusOf(o)
			}
		}
	}
	return out
}

// Run calls apply with the documents after every burst of changes, once the burst has been
// quiet for Debounce (or has lasted MaxDelay), until ctx ends. Call it after Start.
func (s *Source) Run(ctx context.Context, apply func([]*config.Document)) {
	if s.status != nil {
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.status.run(ctx)
		}()
		defer func() { <-done }()
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var first time.Time
	// The initial list's events are in the channel already; Start's caller built from the synced
	// caches, so the first wake-up after it finds the same documents and costs one compile.
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			debounce.Reset(max(0, min(s.cfg.Debounce, first.Add(s.cfg.MaxDelay).Sub(now))))
		case <-debounce.C:
			first = time.Time{}
			apply(s.Documents())
		}
	}
}

// Events counts the informer events since New.
func (s *Source) Events() uint64 { return s.events.Load() }

// Report hands the findings of a compile that included the source's documents to the status
// writer, which writes the objects whose validation messages changed. It does nothing when
// status writing is off, and never blocks on the API server.
func (s *Source) Report(ds []diag.Diagnostic) {
	if s.status != nil {
		s.status.report(s.statuses(), ds)
	}
}

// StatusStats counts the status writes so far; zero when status writing is off.
func (s *Source) StatusStats() StatusStats {
	if s.status == nil {
		return StatusStats{}
	}
	return s.status.stats()
}
