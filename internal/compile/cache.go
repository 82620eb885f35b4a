package compile

import (
	"runtime"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/validate"
)

// Cache carries what one compile can hand the next: each file's decoded documents and each
// document's validation findings, so that a reload after one file changed decodes and validates
// that file only. The cross-document analysis redoes the host and port groups the changed
// documents are in (validate.Analyzer); the snapshot reuses the last one's services and indexes
// where their documents did not change (registry.BuildFrom). Not for concurrent compiles, nor
// a Result.Finish concurrent with a compile.
type Cache struct {
	// DeferAnalysis leaves the cross-document analysis, which only warns, to Result.Finish, so
	// that a reload can serve its snapshot first.
	DeferAnalysis bool
	// Files keeps the decoded documents per file; its bound is config.DefaultCacheFiles.
	Files *config.Cache
	// findings are by file, with the specs they are of, which the copies Load returns of a
	// cached document share; only the last compile's are kept, one config's worth.
	findings map[string]*fileFindings
	// last is where lookup is, within one compile.
	last *fileCursor
	// prev is the last snapshot built, whose services the next build reuses.
	prev *registry.Snapshot
	// analyzer carries the analysis from one compile to the next.
	analyzer *validate.Analyzer
	// mu guards findings while the load's goroutines add to it (validateDecoded).
	mu sync.Mutex
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{Files: config.NewCache(0), findings: map[string]*fileFindings{}, analyzer: validate.NewAnalyzer()}
}

// Paths is the package's Paths, reusing what the cache holds and keeping what it made.
func (c *Cache) Paths(paths []string, opts config.Options, version uint64, copts ...Option) (*Result, error) {
	opts.Cache = c.Files
	opts.Decoded = c.validateDecoded
	loaded, err := config.Load(paths, opts)
	if err != nil {
		return nil, err
	}
	return documents(loaded, version, c, copts...), nil
}

// validateDecoded validates one file's documents as the load decodes them, on its goroutine,
// while they are fresh in that core's cache, rather than in a pass of its own after the load:
// validateAll then finds their findings as it finds a cached file's. At 100,000 entries that
// pass was a tenth of the startup, much of it fetching the documents back into the cache.
func (c *Cache) validateDecoded(docs []*config.Document) {
	ff := &fileFindings{specs: make([]proto.Message, len(docs)), findings: make([][]diag.Diagnostic, len(docs))}
	for k, d := range docs {
		ff.specs[k], ff.findings[k] = d.Spec, validate.Document(d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.findings[docs[0].File] = ff
}

// validateAll validates each document, on every core, reusing the findings the cache holds, and
// returns the findings of docs[i] by i. No list of every document's findings is made: at 100,000
// documents that was 2.4 MB of fresh memory per reload, most of its cost the page faults.
func validateAll(docs []*config.Document, c *Cache) (found func(i int) []diag.Diagnostic) {
	var todo []int // after the first compile, the documents of the files that changed
	// found looks up in the findings as they are now: keep, below, replaces them with this
	// compile's, in which a file named twice has none.
	var prior map[string]*fileFindings
	if c != nil {
		prior = c.findings
	}
	for i, d := range docs {
		if _, ok := c.lookup(prior, i, d); !ok {
			todo = append(todo, i)
		}
	}
	if c != nil {
		c.last = nil
	}
	out := make([][]diag.Diagnostic, len(todo))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(todo)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(todo); j += workers {
				out[j] = validate.Document(docs[todo[j]])
			}
		})
	}
	wg.Wait()
	found = func(i int) []diag.Diagnostic {
		if j, ok := slices.BinarySearch(todo, i); ok {
			return out[j]
		}
		f, _ := c.lookup(prior, i, docs[i])
		return f
	}
	if c != nil {
		c.keep(docs, found)
	}
	return found
}

// fileFindings are the findings of one file's documents, in their order, with the specs they
// are of: a file decoded again has new specs, so a match proves the findings current.
type fileFindings struct {
	specs    []proto.Message
	findings [][]diag.Diagnostic
}

// lookup returns the findings of d, docs[i], when findings (by file) hold its spec's.
// Documents are looked up file run by file run, each from its first: a lookup that does not
// follow the one before starts a run.
func (c *Cache) lookup(findings map[string]*fileFindings, i int, d *config.Document) ([]diag.Diagnostic, bool) {
	if c == nil {
		return nil, false
	}
	if c.last == nil || c.last.file != d.File || c.last.next != i {
		c.last = &fileCursor{file: d.File, ff: findings[d.File], first: i}
	}
	c.last.next = i + 1
	ff, at := c.last.ff, i-c.last.first
	if d.Spec == nil || ff == nil || at >= len(ff.specs) || ff.specs[at] != d.Spec {
		return nil, false
	}
	return ff.findings[at], true
}

// fileCursor is the file lookup is in: documents come file by file, so one map lookup serves
// all of a file's documents.
type fileCursor struct {
	file  string
	ff    *fileFindings
	first int
	// next is the document after the last looked up.
	next int
}

// holds reports whether ff is of exactly docs' specs, in order: then it is kept as it is.
func (ff *fileFindings) holds(docs []*config.Document) bool {
	if ff == nil || len(ff.specs) != len(docs) {
		return false
	}
	for k, d := range docs {
		if d.Spec == nil || ff.specs[k] != d.Spec {
			return false
		}
	}
	return true
}

// keep makes the findings of docs those the cache holds, by file: one config's worth.
func (c *Cache) keep(docs []*config.Document, found func(int) []diag.Diagnostic) {
	c.last = nil
	next := make(map[string]*fileFindings, len(c.findings))
	for i := 0; i < len(docs); {
		j := i
		for j < len(docs) && docs[j].File == docs[i].File {
			j++
		}
		ff := c.findings[docs[i].File]
		if !ff.holds(docs[i:j]) {
			ff = &fileFindings{specs: make([]proto.Message, j-i), findings: make([][]diag.Diagnostic, j-i)}
			for k := i; k < j; k++ {
				ff.specs[k-i], ff.findings[k-i] = docs[k].Spec, found(k)
			}
		}
		if _, twice := next[docs[i].File]; twice {
			// A file whose documents are not together (named twice) is not cached.
			next[docs[i].File] = &fileFindings{}
		} else {
			next[docs[i].File] = ff
		}
		i = j
	}
	c.findings, c.last = next, nil
}
