package config

import (
	"bytes"
	"hash/maphash"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/diag"
)

// DefaultCacheFiles bounds the files a Cache remembers; a config of more files decodes those
// beyond it on every load.
const DefaultCacheFiles = 10_000

// Cache remembers the decoded documents of each file read by Load, keyed by path, size,
// modification time and a hash of the content, so that a reload re-decodes only the files that
// changed. Its documents are never handed out themselves: Load returns copies, numbered in load
// order, so snapshots built from earlier loads keep theirs unchanged. It is safe for concurrent use.
type Cache struct {
	max  int
	seed maphash.Seed

	mu    sync.Mutex
	files map[string]*cached

	hits, misses, evictions atomic.Uint64
}

// cached is one file as last decoded.
type cached struct {
	size  int64
	mtime time.Time
	hash  uint64
	docs  []*Document
	diags []diag.Diagnostic
	read  int
	// used marks the entries read by the current or last load, so that files gone from the
	// config are dropped rather than kept until the bound.
	used bool
}

// NewCache returns a cache of at most maxFiles files; 0 means DefaultCacheFiles.
func NewCache(maxFiles int) *Cache {
	if maxFiles <= 0 {
		maxFiles = DefaultCacheFiles
	}
	return &Cache{max: maxFiles, seed: maphash.MakeSeed(), files: map[string]*cached{}}
}

// CacheStats counts what a Cache did since it was made.
type CacheStats struct {
	// Hits are files whose decoded documents were reused; Misses files decoded.
	Hits, Misses uint64
	// Evictions are files not remembered because the cache was full.
	Evictions uint64
	// Files is how many files the cache holds now.
	Files int
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	n := len(c.files)
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load(), Files: n}
}

// lookup returns the entry for path when its size, time and content hash all match.
func (c *Cache) lookup(path string, info os.FileInfo, hash uint64) *cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.files[path]
	if e == nil || e.size != info.Size() || !e.mtime.Equal(info.ModTime()) || e.hash != hash {
		return nil
	}
	e.used = true
	return e
}

// store remembers a decoded file unless the cache is full.
func (c *Cache) store(path string, e *cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.files[path]; !ok && len(c.files) >= c.max {
		c.evictions.Add(1)
		return
	}
	e.used = true
	c.files[path] = e
}

// sweep forgets the files the load just finished did not read, and unmarks the rest.
func (c *Cache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, e := range c.files {
		if !e.used {
			delete(c.files, p)
			continue
		}
		e.used = false
	}
}

// decodeFile decodes the file at path through the cache, when there is one. The documents are
// numbered from 0; Load renumbers them in load order.
func decodeFile(c *Cache, path, ns string, in *interner) ([]*Document, []diag.Diagnostic, int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, 0, err
	}
	var info os.FileInfo
	var hash uint64
	if c != nil {
		// Stat after the read: a write in between changes the time, so the entry stored is
		// keyed by a time the next load will not find, and that load decodes the file again.
		if info, err = os.Stat(path); err != nil {
			return nil, nil, 0, err
		}
		hash = maphash.Bytes(c.seed, data)
		if e := c.lookup(path, info, hash); e != nil {
			c.hits.Add(1)
			return copyDocs(e.docs), e.diags, e.read, nil
		}
		c.misses.Add(1)
	}
	order := 0
	docs, diags, read := decodeStream(path, bytes.NewReader(data), ns, &order, in)
	if c != nil {
		c.store(path, &cached{size: info.Size(), mtime: info.ModTime(), hash: hash, docs: docs, diags: diags, read: read})
		docs = copyDocs(docs)
	}
	return docs, diags, read, nil
}

// copyDocs returns shallow copies: the spec and field lines are shared and never written.
func copyDocs(docs []*Document) []*Document {
	out := make([]*Document, len(docs))
	copies := make([]Document, len(docs))
	for i, d := range docs {
		copies[i] = *d
		out[i] = &copies[i]
	}
	return out
}
