// Package compile runs the control-plane pipeline once: load documents, validate each, analyse them
// together, and build a registry snapshot from the ones that are valid.
package compile

import (
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
func Paths(paths []string, opts config.Options, version uint64) (*Result, error) {
	loaded, err := config.Load(paths, opts)
	if err != nil {
		return nil, err
	}
	return Documents(loaded, version), nil
}

// Documents validates and analyses what config.Load read and builds the snapshot.
func Documents(loaded config.Result, version uint64) *Result {
	return documents(loaded, version, nil)
}

func documents(loaded config.Result, version uint64, c *Cache) *Result {
	res := &Result{Documents: loaded.Read, Files: loaded.Files}
	res.Diagnostics = append(res.Diagnostics, loaded.Diagnostics...)
	valid := make([]*config.Document, 0, len(loaded.Documents))
	findings := validateAll(loaded.Documents, c)
	for i, doc := range loaded.Documents {
		found := findings[i]
		res.Diagnostics = append(res.Diagnostics, found...)
		if !hasError(found) {
			valid = append(valid, doc)
		}
	}
	res.Diagnostics = append(res.Diagnostics, validate.Analyze(valid)...)
	diag.Sort(res.Diagnostics)
	if c != nil {
		res.Snapshot = registry.BuildFrom(c.prev, valid, version)
		c.prev = res.Snapshot
	} else {
		res.Snapshot = registry.Build(valid, version)
	}
	return res
}

func hasError(ds []diag.Diagnostic) bool {
	for _, d := range ds {
		if d.Level == diag.Error {
			return true
		}
	}
	return false
}
