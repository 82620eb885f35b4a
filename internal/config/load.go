package config

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshentry/meshentry/internal/diag"
)

// Options set how Load reads its inputs.
type Options struct {
	// Namespace is given to documents whose metadata names none.
	Namespace string
	// Stdin is read for the path "-".
	Stdin io.Reader
}

// Result is everything Load read: the documents that decoded and the findings about those that did not.
type Result struct {
	Documents   []*Document
	Diagnostics []diag.Diagnostic
	Files       int
	// Read counts every non-empty document, including those that failed to decode.
	Read int
}

// Load reads files, folders (recursively, *.yaml, *.yml and *.json) and "-" for standard input.
// A bad document is a diagnostic, not an error; the error is for paths that cannot be read at all.
func Load(paths []string, opts Options) (Result, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	var res Result
	order := 0
	read := func(name string, r io.Reader) {
		docs, diags, n := decodeCounting(name, r, opts.Namespace, &order)
		res.Read += n
		res.Documents = append(res.Documents, docs...)
		res.Diagnostics = append(res.Diagnostics, diags...)
		res.Files++
	}
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				return res, fmt.Errorf("read -: no standard input")
			}
			read("<stdin>", opts.Stdin)
			continue
		}
		files, err := Expand(p, nil)
		if err != nil {
			return res, err
		}
		for _, f := range files {
			data, err := os.Open(f)
			if err != nil {
				return res, fmt.Errorf("read %s: %w", f, err)
			}
			read(f, data)
			data.Close()
		}
	}
	return res, nil
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
