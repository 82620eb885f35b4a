// Package compile runs the control-plane pipeline once: load documents, validate each, analyse them
// together, and build a registry snapshot from the ones that are valid.
package compile

import (
	"slices"
	"sync"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/validate"
)

// Result is one compiled configuration.
type Result struct {
	Snapshot *registry.Snapshot
	// Diagnostics holds every error and warning, sorted by file and line.
	Diagnostics []diag.Diagnostic
	// Documents counts the documents read, valid or not; Files the files read.
	Documents int
	Files     int
	// analyse is the cross-document analysis a Cache with DeferAnalysis left for Finish.
	analyse func() []diag.Diagnostic
}

// Finish runs the cross-document analysis a Cache with DeferAnalysis set left out, adding its
// warnings to Diagnostics; it does nothing for any other result, or when called again. Not for
// concurrent use with readers of Diagnostics.
func (r *Result) Finish() {
	if r.analyse == nil {
		return
	}
	r.Diagnostics = append(r.Diagnostics, r.analyse()...)
	r.analyse = nil
	diag.Sort(r.Diagnostics)
}

// Errors counts the findings that rejected a document.
func (r *Result) Errors() int {
	n := 0
	for _, d := range r.Diagnostics {
		if d.Level == diag.Error {
			n++
		}
	}
	return n
}

// Paths compiles the files, folders and "-" in paths. The error is for inputs that cannot be read
// at all; invalid documents are diagnostics and are left out of the snapshot.
func Paths(paths []string, opts config.Options, version uint64, options ...Option) (*Result, error) {
	loaded, err := config.Load(paths, opts)
	if err != nil {
		return nil, err
	}
	return Documents(loaded, version, options...), nil
}

// Option changes what a compile does beyond validating, analysing and building.
type Option func(*options)

type options struct {
	autoAddresses registry.AutoAddressFunc
	noSnapshot    bool
}

// WithoutSnapshot compiles for the findings alone (validate): no snapshot is built, and
// Result.Snapshot is nil.
func WithoutSnapshot() Option {
	return func(o *options) { o.noSnapshot = true }
}

// alongside runs the cross-document analysis on its own goroutine while build runs: the two
// only read the documents, and each walks all of them, so on a machine of two cores a compile
// of many documents takes the longer of the two, not their sum.
func alongside(analyse func() []diag.Diagnostic, build func()) []diag.Diagnostic {
	var found []diag.Diagnostic
	var wg sync.WaitGroup
	wg.Go(func() { found = analyse() })
	build()
	wg.Wait()
	return found
}

// WithAutoAddresses compiles for a proxy whose DNS proxy is on: the hosts that need one get the
// addresses alloc gives them (registry.WithAutoAddresses), ME2001 says the clash is gone for
// clients resolving through the DNS proxy, and a host left without an IPv4 address because the
// range is full is warned about (ME2010).
func WithAutoAddresses(alloc registry.AutoAddressFunc) Option {
	return func(o *options) { o.autoAddresses = alloc }
}

// Documents validates and analyses what config.Load read and builds the snapshot.
func Documents(loaded config.Result, version uint64, opts ...Option) *Result {
	return documents(loaded, version, nil, opts...)
}

func documents(loaded config.Result, version uint64, c *Cache, opts ...Option) *Result {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	res := &Result{Documents: loaded.Read, Files: loaded.Files}
	res.Diagnostics = append(res.Diagnostics, loaded.Diagnostics...)
	valid := validDocuments(loaded.Documents, validateAll(loaded.Documents, c), &res.Diagnostics)
	switch {
	case o.autoAddresses != nil:
		// Allocated addresses are written into the services, so none is shared with the last
		// snapshot: each build allocates for all of its hosts.
		res.Diagnostics = append(res.Diagnostics, validate.Analyze(valid, validate.WithDNSProxy())...)
		res.Snapshot = registry.Build(valid, version, registry.WithAutoAddresses(o.autoAddresses))
		res.Diagnostics = append(res.Diagnostics, unallocated(res.Snapshot)...)
	case c != nil:
		// The analysis only warns, so a reload may serve before it; it redoes only what the
		// files that changed touch (validate.Analyzer).
		analyse := func() []diag.Diagnostic { return c.analyzer.Analyze(valid) }
		build := func() {
			res.Snapshot = registry.BuildFrom(c.prev, valid, version)
			c.prev = res.Snapshot
		}
		if c.DeferAnalysis {
			res.analyse = analyse
			build()
		} else {
			res.Diagnostics = append(res.Diagnostics, alongside(analyse, build)...)
		}
	default:
		res.Diagnostics = append(res.Diagnostics, alongside(func() []diag.Diagnostic { return validate.Analyze(valid) }, func() {
			if !o.noSnapshot {
				res.Snapshot = registry.Build(valid, version)
			}
		})...)
	}
	diag.Sort(res.Diagnostics)
	return res
}

// validDocuments adds each document's findings to diags and returns the documents without an
// error: docs itself when all are valid, as a reload's usually are, since a copy of 100,000
// pointers is fresh memory to fault in.
func validDocuments(docs []*config.Document, found func(int) []diag.Diagnostic, diags *[]diag.Diagnostic) []*config.Document {
	var valid []*config.Document
	shared := true // while every document so far is valid, valid is docs[:i]
	for i := range docs {
		f := found(i)
		*diags = append(*diags, f...)
		switch {
		case hasError(f) && shared:
			valid, shared = slices.Clone(docs[:i]), false
		case hasError(f):
		case !shared:
			valid = append(valid, docs[i])
		}
	}
	if shared {
		return docs
	}
	return valid
}

func hasError(ds []diag.Diagnostic) bool {
	for _, d := range ds {
		if d.Level == diag.Error {
			return true
		}
	}
	return false
}

// unallocated warns once per host that needed an allocated address and got no IPv4 one.
func unallocated(s *registry.Snapshot) []diag.Diagnostic {
	var out []diag.Diagnostic
	seen := map[string]bool{}
	for _, svc := range s.Services {
		if seen[svc.Host] || !(svc.AutoAllocated || registry.NeedsAutoAddress(svc)) {
			continue
		}
		has4 := false
		for _, p := range svc.Addresses {
			has4 = has4 || p.Addr().Is4()
		}
		if !has4 {
			seen[svc.Host] = true
			out = append(out, validate.NoAutoAddress(svc.Source, svc.Host))
		}
	}
	return out
}
