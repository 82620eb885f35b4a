package config

import (
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
// changed. Load hands out the cached documents themselves, shared with the snapshots built from
// earlier loads, as long as their place in the load order (Document.Order) is unchanged; a file
// whose documents moved (one before it gained or lost a document) gets copies numbered anew,
// which the cache keeps from then on, so a document once handed out is never written. It is
// safe for concurrent use.
type Cache struct {
	max  int
	seed maphash.Seed
	// margin is racyMargin; tests shorten it.
	margin time.Duration

	mu    sync.Mutex
	files map[string]*cached

	hits, misses, evictions atomic.Uint64
	rereads, settled        atomic.Uint64
}

// racyMargin is how much older than the read of a file its change time must be for a later
// stat showing the same size, times and inode to prove the content unchanged, as git's "racily
// clean" rule has it: a write in the same clock tick as the read, or on a file system with
// coarse times, leaves the times as they were, so such a file is read and hashed again.
const racyMargin = 2 * time.Second

// cached is one file as last decoded.
type cached struct {
	stat fileStat
	hash uint64
	// settled says the stat proves the content: its times were racyMargin older than the read.
	settled bool
	docs    []*Document
	diags   []diag.Diagnostic
	read    int
	// used marks the entries read by the current or last load, so that files gone from the
	// config are dropped rather than kept until the bound.
	used bool
}

// NewCache returns a cache of at most maxFiles files; 0 means DefaultCacheFiles.
func NewCache(maxFiles int) *Cache {
	if maxFiles <= 0 {
		maxFiles = DefaultCacheFiles
	}
	return &Cache{max: maxFiles, seed: maphash.MakeSeed(), margin: racyMargin, files: map[string]*cached{}}
}

// CacheStats counts what a Cache did since it was made.
type CacheStats struct {
	// Hits are files whose decoded documents were reused; Misses files decoded.
	Hits, Misses uint64
	// Evictions are files not remembered because the cache was full.
	Evictions uint64
	// Rereads are reads, by Look or Load, of files whose stat was as cached but had been too
	// recent at the read that cached them to prove their content: the reads Settle saves.
	Rereads uint64
	// Settled are the files Settle proved current after the fact.
	Settled uint64
	// Files is how many files the cache holds now.
	Files int
}

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	n := len(c.files)
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Evictions: c.evictions.Load(),
		Rereads: c.rereads.Load(), Settled: c.settled.Load(), Files: n}
}

// fileStat is what a stat says about a file's content without reading it.
type fileStat struct {
	size         int64
	mtime, ctime time.Time
	dev, ino     uint64
}

func statOf(path string) (fileStat, error) {
	info, err := os.Stat(path)
	if err != nil {
		return fileStat{}, err
	}
	st := fileStat{size: info.Size(), mtime: info.ModTime()}
	statSys(info, &st)
	return st, nil
}

// settledAt reports whether a read that began at start saw content no later write can hide.
func (st fileStat) settledAt(start time.Time, margin time.Duration) bool {
	limit := start.Add(-margin)
	return !st.ctime.IsZero() && st.mtime.Before(limit) && st.ctime.Before(limit)
}

// settleWait is about how long from now until a read of a file of stat st begins late enough
// to settle it (settledAt): 0 or less when one beginning now does.
func (st fileStat) settleWait(now time.Time, margin time.Duration) time.Duration {
	newest := st.mtime
	if st.ctime.After(newest) {
		newest = st.ctime
	}
	return newest.Add(margin).Sub(now)
}

// Settle proves current, by a read now, the cached files a stat could not prove because they
// had changed within the margin before the read that cached them: each whose stat times are
// now older than the margin is stated, read and hashed again outside the lock, and marked
// settled when its stat and content are still the entry's, so that the next look and load
// take it on a stat alone. A file that changed is left as it is, for the next load to decode.
// next is how long until the next file still unsettled can be, 0 when none can. Settle reads
// only files the cache holds, at most its bound, and is safe beside a Load.
func (c *Cache) Settle(now time.Time) (next time.Duration) {
	type due struct {
		path string
		e    *cached
		stat fileStat
		hash uint64
	}
	later := func(st fileStat, from time.Time) {
		// A millisecond on, so that the timer set to it finds the file past the margin.
		if d := max(st.settleWait(from, c.margin), 0) + time.Millisecond; next == 0 || d < next {
			next = d
		}
	}
	var todo []due
	c.mu.Lock()
	for p, e := range c.files {
		switch {
		case e.settled || e.stat.ctime.IsZero(): // done, or no change time to prove it by
		case e.stat.settledAt(now, c.margin):
			todo = append(todo, due{p, e, e.stat, e.hash})
		default:
			later(e.stat, now)
		}
	}
	c.mu.Unlock()
	in := &interner{} // for its read buffer, reused file after file
	for _, d := range todo {
		start := time.Now() // the read begins before the stat, as decodeFile's does
		st, err := statOf(d.path)
		if err != nil || st != d.stat {
			continue
		}
		data, err := in.readFile(d.path)
		if err != nil || maphash.Bytes(c.seed, data) != d.hash {
			continue
		}
		if !st.settledAt(start, c.margin) { // now was ahead of the clock
			later(st, start)
			continue
		}
		c.mu.Lock()
		if e := c.files[d.path]; e == d.e && e.stat == st && e.hash == d.hash && !e.settled {
			e.settled = true
			c.settled.Add(1)
		}
		c.mu.Unlock()
	}
	return next
}

// known returns the entry for path when a stat alone proves it current; unproven says the
// entry has that stat but is not settled, so the read that follows is a reread.
func (c *Cache) known(path string, st fileStat) (e *cached, unproven bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e = c.files[path]
	if e == nil || e.stat != st {
		return nil, false
	}
	if !e.settled {
		return nil, true
	}
	e.used = true
	return e, false
}

// lookup returns the entry for path when its stat and content hash match, and marks it settled
// when the stat now proves it.
func (c *Cache) lookup(path string, st fileStat, hash uint64, start time.Time) *cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.files[path]
	if e == nil || e.stat != st || e.hash != hash {
		return nil
	}
	e.used = true
	e.settled = st.settledAt(start, c.margin)
	return e
}

// Digest returns a hash of the content of the file at path, from the cache when a stat proves
// the cached content current, else by reading it. Hashes are comparable within one Cache only.
func (c *Cache) Digest(path string) (uint64, error) {
	l, err := c.Look(path, nil)
	return l.Hash, err
}

// Looked is what Look found of one file: its stat and a hash of its content.
type Looked struct {
	Size    int64
	ModTime time.Time
	Mode    os.FileMode
	Hash    uint64
}

// Stats are the stats Look made of files moments before a Load, keyed by path: given as
// Options.Stats, that Load takes them rather than stat every file again. A file written since
// is at worst read as it was at the look, which the watcher that looked then sees as a change
// at its next look.
type Stats map[string]fileStat

// Stat is Look without the digest (Hash is 0): the stat, added to into when into is not nil.
func (c *Cache) Stat(path string, into Stats) (Looked, error) {
	_, l, err := statLooked(path, into)
	return l, err
}

// statLooked stats the file at path, adding the stat to into when into is not nil.
func statLooked(path string, into Stats) (fileStat, Looked, error) {
	info, err := os.Stat(path)
	if err != nil {
		return fileStat{}, Looked{}, err
	}
	st := fileStat{size: info.Size(), mtime: info.ModTime()}
	statSys(info, &st)
	if into != nil {
		into[path] = st
	}
	return st, Looked{Size: st.size, ModTime: st.mtime, Mode: info.Mode()}, nil
}

// Decoded returns the hash of the content a Load through c given stats (Options.Stats) last
// decoded for path: the digest of exactly what that Load read, which a Look after it could not
// promise, as the file may have been written since. ok is false when c does not hold the file
// as of that stat (it was full, say, or the path was not loaded).
func (c *Cache) Decoded(path string, stats Stats) (hash uint64, ok bool) {
	st, given := stats[path]
	if !given {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.files[path]; e != nil && e.stat == st {
		return e.hash, true
	}
	return 0, false
}

// Look stats the file at path and digests its content as Digest does, adding the stat to into
// when into is not nil.
func (c *Cache) Look(path string, into Stats) (Looked, error) {
	st, l, err := statLooked(path, into)
	if err != nil {
		return Looked{}, err
	}
	e, unproven := c.known(path, st)
	if e != nil {
		l.Hash = e.hash
		return l, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Looked{}, err
	}
	if unproven {
		c.rereads.Add(1)
	}
	l.Hash = maphash.Bytes(c.seed, data)
	return l, nil
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

// decodeFile decodes the file at path through the cache, when there is one, with the stat
// given in stats if there is one. Documents decoded now (fresh) are numbered from 0; those the
// cache holds are as Load last numbered them, and Load renumbers copies if their place moved.
func decodeFile(c *Cache, path, ns string, stats Stats, in *interner) (docs []*Document, diags []diag.Diagnostic, read int, fresh bool, err error) {
	var st fileStat
	start := time.Now()
	if c != nil {
		var given bool
		if st, given = stats[path]; !given {
			if st, err = statOf(path); err != nil {
				return nil, nil, 0, false, err
			}
		}
		e, unproven := c.known(path, st)
		if e != nil {
			c.hits.Add(1)
			return e.docs, e.diags, e.read, false, nil
		}
		if unproven {
			c.rereads.Add(1)
		}
	}
	data, err := in.readFile(path)
	if err != nil {
		return nil, nil, 0, false, err
	}
	var hash uint64
	if c != nil {
		// A write between the stat and the read changes the times, so the entry stored is
		// keyed by a stat the next load will not find, and that load decodes the file again.
		hash = maphash.Bytes(c.seed, data)
		if e := c.lookup(path, st, hash, start); e != nil {
			c.hits.Add(1)
			return e.docs, e.diags, e.read, false, nil
		}
		c.misses.Add(1)
	}
	order := 0
	docs, diags, read = decodeBytes(path, data, ns, &order, in)
	if c != nil {
		c.store(path, &cached{stat: st, hash: hash, settled: st.settledAt(start, c.margin), docs: docs, diags: diags, read: read})
	}
	return docs, diags, read, true, nil
}

// numbered returns docs numbered in load order from first: docs themselves when they are so
// numbered already, else renumbered copies, since the documents may be held by snapshots built
// from an earlier load.
func numbered(docs []*Document, first int) []*Document {
	if len(docs) == 0 || docs[0].Order == first && docs[len(docs)-1].Order == first+len(docs)-1 {
		return docs
	}
	return renumber(docs, first)
}

// renumber returns shallow copies of docs numbered from first: the spec and field lines are
// shared and never written.
func renumber(docs []*Document, first int) []*Document {
	out := make([]*Document, len(docs))
	copies := make([]Document, len(docs))
	for i, d := range docs {
		copies[i] = *d
		copies[i].Order = first + i
		out[i] = &copies[i]
	}
	return out
}

// renumbered makes docs the documents the cache holds for path, so that the next load finds
// them numbered as this one did, when the entry is still the one that gave old.
func (c *Cache) renumbered(path string, old, docs []*Document) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.files[path]; e != nil && len(e.docs) == len(old) && len(old) > 0 && &e.docs[0] == &old[0] {
		e.docs = docs
	}
}
