package vip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxStateBytes bounds the state file read at startup: 65,536 stale plus the live hosts, at
// about 80 bytes each, stay far below it.
const maxStateBytes = 64 << 20

// stateFile is the state file's format; Version lets a later format be told apart.
type stateFile struct {
	Version     int              `json:"version"`
	Allocations map[string]Addrs `json:"allocations"`
}

// LoadState reads allocations saved by Save; a missing file is no allocations, not an error.
func LoadState(path string) (map[string]Addrs, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read vip state: %w", err)
	}
	defer f.Close()
	// The size is checked before reading, and the read stops a byte past the limit in case the
	// file grows meanwhile, so a huge file is refused without being read whole.
	if fi, err := f.Stat(); err == nil && fi.Size() > maxStateBytes {
		return nil, fmt.Errorf("read vip state %s: over %d MiB", path, maxStateBytes>>20)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read vip state %s: %w", path, err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("read vip state %s: over %d MiB", path, maxStateBytes>>20)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read vip state %s: %w", path, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("read vip state %s: version %d, want 1", path, st.Version)
	}
	return st.Allocations, nil
}

// Save writes every allocation held to path when any changed since the last Save, through a
// temporary file renamed over it, so a crash leaves the old state or the new, never half.
func (a *Allocator) Save(path string) error {
	a.mu.Lock()
	if !a.changed {
		a.mu.Unlock()
		return nil
	}
	st := stateFile{Version: 1, Allocations: make(map[string]Addrs, len(a.entries))}
	for h, e := range a.entries {
		st.Allocations[h] = e.addrs
	}
	a.changed = false
	a.mu.Unlock()
	b, err := json.Marshal(st)
	if err == nil {
		err = writeAtomic(path, b)
	}
	if err != nil {
		a.mu.Lock()
		a.changed = true // try again with the next allocation
		a.mu.Unlock()
		return fmt.Errorf("save vip state: %w", err)
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
