package compile

import (
	"runtime"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/validate"
)

// Cache carries what one compile can hand the next: each file's decoded documents and each
// document's validation findings, so that a reload after one file changed decodes and validates
// that file only. Cross-document analysis is always made anew, since one document can change
// what is said about any other; the snapshot reuses the last one's services and indexes where
// their documents did not change (registry.BuildFrom). Not for concurrent compiles.
type Cache struct {
	// DeferAnalysis leaves the cross-document analysis, which only warns, to Result.Finish, so
	// that a reload can serve its snapshot first.
	DeferAnalysis bool
	// Files keeps the decoded documents per file; its bound is config.DefaultCacheFiles.
	Files *config.Cache
	// findings are by spec, which the copies Load returns of a cached document share; only
	// the specs of the last compile are kept, so it holds no more than one config's worth.
	findings map[proto.Message][]diag.Diagnostic
	// prev is the last snapshot built, whose services the next build reuses.
	prev *registry.Snapshot
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{Files: config.NewCache(0), findings: map[proto.Message][]diag.Diagnostic{}}
}

// Paths is the package's Paths, reusing what the cache holds and keeping what it made.
func (c *Cache) Paths(paths []string, opts config.Options, version uint64, copts ...Option) (*Result, error) {
	opts.Cache = c.Files
	loaded, err := config.Load(paths, opts)
	if err != nil {
		return nil, err
	}
	return documents(loaded, version, c, copts...), nil
}

// validateAll validates each document, on every core, reusing the findings the cache holds.
func validateAll(docs []*config.Document, c *Cache) [][]diag.Diagnostic {
	out := make([][]diag.Diagnostic, len(docs))
	todo := make([]int, 0, len(docs))
	for i, d := range docs {
		if f, ok := c.lookup(d); ok {
			out[i] = f
			continue
		}
		todo = append(todo, i)
	}
	workers := min(runtime.GOMAXPROCS(0), max(1, len(todo)/256))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(todo); j += workers {
				out[todo[j]] = validate.Document(docs[todo[j]])
			}
		})
	}
	wg.Wait()
	if c != nil {
		next := make(map[proto.Message][]diag.Diagnostic, len(docs))
		for i, d := range docs {
			if d.Spec != nil {
				next[d.Spec] = out[i]
			}
		}
		c.findings = next
	}
	return out
}

func (c *Cache) lookup(d *config.Document) ([]diag.Diagnostic, bool) {
	if c == nil || d.Spec == nil {
		return nil, false
	}
	f, ok := c.findings[d.Spec]
	return f, ok
}
