package main

import (
	"fmt"
	"os"
	"sync"
)

// reopenFile is an access-log file that can be opened again by its path, as Envoy reopens its
// access logs on SIGUSR1: logrotate renames the file away and signals, and lines then go to a
// new file instead of on growing the renamed one for as long as the process lives.
type reopenFile struct {
	path string
	// mu orders Reopen against the writer goroutine's writes.
	mu sync.Mutex
	f  *os.File
}

func openReopenFile(path string) (*reopenFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &reopenFile{path: path, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// Write writes to the file open now.
func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// Reopen opens the path again and closes the file it replaces; when the path cannot be opened,
// the old file stays in use.
func (r *reopenFile) Reopen() error {
	f, err := openAppend(r.path)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

// Close closes the file open now.
func (r *reopenFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}
