package kube

import (
	"sync"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
)

// Merger compiles the documents of the file source and of the Kubernetes source together, so
// that -f and --kube combine into one snapshot; either side changing compiles both again.
type Merger struct {
	mu      sync.Mutex
	files   []*config.Document
	nFiles  int
	kube    []*config.Document
	version uint64
	publish func(*compile.Result)
	// opts are the run's compile options, as the file source compiles with them (the DNS
	// proxy's address allocation), so that cluster objects get what files get.
	opts []compile.Option
}

// NewMerger starts from the file source's accepted result; nil stands for no file source.
// Every compile takes opts.
func NewMerger(files *compile.Result, opts ...compile.Option) *Merger {
	m := &Merger{opts: opts}
	if files != nil {
		m.version = files.Snapshot.Version
		m.files, m.nFiles = files.Snapshot.Documents, files.Files
	}
	return m
}

// SetPublish names the function each later compile is handed to, under the Merger's lock, so
// that snapshots are published in the order they were compiled.
func (m *Merger) SetPublish(publish func(*compile.Result)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publish = publish
}

// Files takes a new accepted result of the file source and compiles it with the last documents
// from Kubernetes.
func (m *Merger) Files(res *compile.Result) *compile.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files, m.nFiles = res.Snapshot.Documents, res.Files
	return m.compileLocked()
}

// Kube takes the documents the Kubernetes source holds now and compiles them with the files'.
func (m *Merger) Kube(docs []*config.Document) *compile.Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kube = docs
	return m.compileLocked()
}

// compileLocked builds the next version from both sides. The Kubernetes documents are copied
// to be numbered after the files' (the tie-breaker after creation time), since the snapshot
// built before still holds the previous copies.
func (m *Merger) compileLocked() *compile.Result {
	m.version++
	docs := make([]*config.Document, 0, len(m.files)+len(m.kube))
	docs = append(docs, m.files...)
	base := 0 // after every file's number, which Load does not give one by one
	if n := len(m.files); n > 0 {
		base = max(n, m.files[n-1].Order+1)
	}
	for i, d := range m.kube {
		c := *d
		c.Order = base + i
		docs = append(docs, &c)
	}
	res := compile.Documents(config.Result{Documents: docs, Read: len(docs), Files: m.nFiles}, m.version, m.opts...)
	if m.publish != nil {
		m.publish(res)
	}
	return res
}
