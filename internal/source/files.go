package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// fingerprint is a SHA-256 digest; the zero value matches no set of files.
type fingerprint [sha256.Size]byte

// listFiles returns the config files paths name now, in the order config.Load reads them, and
// the folders to watch so that a change to any of them is seen: each file's folder (and its
// link target's), each folder path and every folder below it. "-" is skipped: it is read once.
func listFiles(paths []string) (files, dirs []string, err error) {
	seen := map[string]bool{}
	addDir := func(d string) {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, p := range paths {
		if p == "-" {
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", p, err)
		}
		if !info.IsDir() {
			files = append(files, p)
			// The folder, not the file: editors replace a file by renaming over it, and a
			// ConfigMap swaps its "..data" link, and a watch on the old inode sees neither.
			addDir(filepath.Dir(p))
			if real, err := filepath.EvalSymlinks(p); err == nil {
				addDir(filepath.Dir(real))
			}
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// The same rule as config.Load: Kubernetes' hidden "..TIMESTAMP" copies are skipped.
			if path != p && strings.HasPrefix(d.Name(), "..") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				addDir(path)
				return nil
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", p, err)
		}
	}
	return files, dirs, nil
}

// statPrint digests the names, sizes, modification times and modes of files: it is cheap, so the
// periodic check reads contents only when it changes.
func statPrint(files []string) (fingerprint, error) {
	h := sha256.New()
	var buf [20]byte
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			return fingerprint{}, fmt.Errorf("read %s: %w", f, err)
		}
		io.WriteString(h, f)
		binary.LittleEndian.PutUint64(buf[:8], uint64(info.Size()))
		binary.LittleEndian.PutUint64(buf[8:16], uint64(info.ModTime().UnixNano()))
		// The mode too: a file made readable again changes nothing else.
		binary.LittleEndian.PutUint32(buf[16:], uint32(info.Mode()))
		h.Write(buf[:])
	}
	var fp fingerprint
	h.Sum(fp[:0])
	return fp, nil
}

// contentPrint digests the names and contents of files, and stdin, which decide what a compile
// would produce: a rewrite with the same bytes gives the same digest.
func contentPrint(files []string, stdin []byte) (fingerprint, error) {
	h := sha256.New()
	var buf [8]byte
	put := func(name string, r io.Reader) error {
		io.WriteString(h, name)
		h.Write([]byte{0})
		n, err := io.Copy(h, r)
		// The length ends each file, so that moving bytes from one file to the next changes
		// the digest.
		binary.LittleEndian.PutUint64(buf[:], uint64(n))
		h.Write(buf[:])
		return err
	}
	if stdin != nil {
		put("-", bytes.NewReader(stdin))
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return fingerprint{}, fmt.Errorf("read %s: %w", f, err)
		}
		err = put(f, fh)
		fh.Close()
		if err != nil {
			return fingerprint{}, fmt.Errorf("read %s: %w", f, err)
		}
	}
	var fp fingerprint
	h.Sum(fp[:0])
	return fp, nil
}
