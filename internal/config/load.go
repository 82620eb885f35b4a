package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/meshentry/meshentry/internal/diag"
)

// Options set how Load reads its inputs.
type Options struct {
	// Namespace is given to documents whose metadata names none.
	Namespace string
	// Stdin is read for the path "-".
	Stdin io.Reader
	// Cache, when set, keeps each file's decoded documents for the next Load, which then
	// decodes only the files that changed.
	Cache *Cache
	// Stats, with Cache, are the files' stats made by Cache.Look just before, which Load then
	// uses rather than stat the files again.
	Stats Stats
	// Decoded, when set, is called with the documents of each file decoded anew (not those a
	// cache gives back, nor standard input's), on the goroutine that decoded them, before Load
	// numbers them: so that work per document can be done while it is fresh in the cache of
	// the core that made it. It must be safe for concurrent use and must not write documents.
	Decoded func(docs []*Document)
}

// Result is everything Load read: the documents that decoded and the findings about those that did not.
type Result struct {
	Documents   []*Document
	Diagnostics []diag.Diagnostic
	Files       int
	// Read counts every non-empty document, including those that failed to decode.
	Read int
}

// fileResult is one input decoded, in its place in load order.
type fileResult struct {
	name  string
	stdin bool
	docs  []*Document
	diags []diag.Diagnostic
	read  int
	err   error
	// fresh says docs were decoded by this load, so no one else holds them yet.
	fresh bool
}

// Load reads files, folders (recursively, *.yaml, *.yml and *.json) and "-" for standard input.
// A bad document is a diagnostic, not an error; the error is for paths that cannot be read at all.
// Files are decoded in parallel, one per core, and their documents numbered in load order after.
func Load(paths []string, opts Options) (Result, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	var res Result
	var inputs []fileResult
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				return res, fmt.Errorf("read -: no standard input")
			}
			inputs = append(inputs, fileResult{name: "<stdin>", stdin: true})
			continue
		}
		files, err := Expand(p, nil)
		if err != nil {
			return res, err
		}
		for _, f := range files {
			inputs = append(inputs, fileResult{name: f})
		}
	}
	decodeAll(inputs, opts)
	if opts.Cache != nil {
		opts.Cache.sweep()
	}
	order, total := 0, 0
	for i := range inputs {
		total += len(inputs[i].docs)
	}
	res.Documents = make([]*Document, 0, total)
	seen := make(map[string]bool, len(inputs))
	for i := range inputs {
		in := &inputs[i]
		if in.err != nil {
			return res, fmt.Errorf("read %s: %w", in.name, in.err)
		}
		// A file's documents are decoded numbered from 0, or come from the cache numbered as
		// the last load numbered them: only those whose place moved are copied and numbered.
		order = orderBase(i, order)
		docs := in.docs
		switch {
		case seen[in.name]:
			// A path given twice shares the cache's documents with its first place: always
			// copies here, and not kept.
			docs = renumber(docs, order)
		case in.fresh:
			for k, d := range docs {
				d.Order = order + k
			}
		default:
			if docs = numbered(in.docs, order); len(docs) > 0 && &docs[0] != &in.docs[0] {
				opts.Cache.renumbered(in.name, in.docs, docs)
			}
		}
		if !in.stdin {
			seen[in.name] = true
		}
		order += len(docs)
		res.Read += in.read
		res.Documents = append(res.Documents, docs...)
		res.Diagnostics = append(res.Diagnostics, in.diags...)
		res.Files++
	}
	return res, nil
}

// orderBase is where the numbers (Document.Order) of the documents of input i start, after
// next, the first number the inputs before it left free. With 64-bit numbers every input has a
// range of its own, 2^32 wide, so that a file that gains or loses a document moves no other
// file's documents, which the decode cache and the compile after it then keep sharing; only a
// file added or removed before them moves them. With 32-bit ones, numbers follow on.
func orderBase(i, next int) int {
	if strconv.IntSize < 64 {
		return next
	}
	return i << 32
}

// decodeAll fills in each input's documents: standard input here, files by a worker per core.
func decodeAll(inputs []fileResult, opts Options) {
	jobs := make(chan *fileResult)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(inputs)) {
		wg.Go(func() {
			strs := newInterner()
			for in := range jobs {
				in.docs, in.diags, in.read, in.fresh, in.err = decodeFile(opts.Cache, in.name, opts.Namespace, opts.Stats, strs)
				if opts.Decoded != nil && in.fresh && in.err == nil && len(in.docs) > 0 {
					opts.Decoded(in.docs)
				}
			}
		})
	}
	for i := range inputs {
		in := &inputs[i]
		if in.stdin {
			order := 0
			in.docs, in.diags, in.read = decodeCounting(in.name, opts.Stdin, opts.Namespace, &order)
			in.fresh = true
			continue
		}
		jobs <- in
	}
	close(jobs)
	wg.Wait()
}

// Expand lists the config files a path names, as Load reads them: itself, or those below it in
// lexical order. dir, when not nil, is called with p, if a folder, and every folder walked below
// it, so that a watcher sees the same folders Load reads from.
func Expand(p string, dir func(string)) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	// WalkDir does not follow a link given as its root, and would read nothing from a link to a
	// folder; a trailing separator makes the root the folder, and the files stay named under p.
	root := p
	if !os.IsPathSeparator(p[len(p)-1]) {
		root += string(filepath.Separator)
	}
	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			path = p
		}
		// Kubernetes' atomic writer keeps a mounted ConfigMap's files in a "..TIMESTAMP" folder
		// behind a "..data" symlink, with the visible names linking through it: reading the
		// hidden copies as well would load every document twice.
		if path != p && strings.HasPrefix(d.Name(), "..") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if dir != nil {
				dir(path)
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return files, nil
}
