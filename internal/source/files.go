package source

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/meshentry/meshentry/internal/config"
)

// fingerprint is a SHA-256 digest; the zero value matches no set of files.
type fingerprint [sha256.Size]byte

// listFiles returns the config files paths name now, in the order config.Load reads them, and
// the folders to watch so that a change to any of them is seen: each file's folder (and its
// link target's), each folder path and every folder below it. "-" is skipped: it is read once.
func listFiles(paths []string) (files, dirs []string, err error) {
	seen := map[string]bool{}
	addDir := func(d string) {
		// A watch is on the folder a path resolves to when it is added: keyed by that folder,
		// a link pointed elsewhere gives a new key, so the new target is watched and the old
		// one dropped.
		if real, err := filepath.EvalSymlinks(d); err == nil {
			d = real
		}
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	for _, p := range paths {
		if p == "-" {
			continue
		}
		// The same walk as config.Load's, so the files watched are the files read.
		isDir := false
		found, err := config.Expand(p, func(d string) {
			isDir = isDir || d == p
			addDir(d)
		})
		if err != nil {
			return nil, nil, err
		}
		files = append(files, found...)
		// A file's folder, not the file: editors replace a file by renaming over it, and a
		// ConfigMap swaps its "..data" link, and a watch on the old inode sees neither. For a
		// folder given through a link, the link's folder, where pointing it elsewhere is seen.
		if !isDir || isLink(p) {
			addDir(filepath.Dir(filepath.Clean(p)))
		}
		if !isDir {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				addDir(filepath.Dir(real))
			}
		}
	}
	return files, dirs, nil
}

// isLink reports whether path itself, with any trailing separator, is a symbolic link.
func isLink(path string) bool {
	info, err := os.Lstat(filepath.Clean(path))
	return err == nil && info.Mode()&os.ModeSymlink != 0
}

// statPrint digests the names, sizes, modification times and modes of files: it is cheap, so the
// periodic check reads contents only when it changes.
func statPrint(files []string) (fingerprint, error) {
	h := sha256.New()
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			return fingerprint{}, fmt.Errorf("read %s: %w", f, err)
		}
		writeStat(h, f, info.Size(), info.ModTime(), info.Mode())
	}
	var fp fingerprint
	h.Sum(fp[:0])
	return fp, nil
}

// writeStat adds one file's stat to a statPrint digest.
func writeStat(h io.Writer, f string, size int64, mtime time.Time, mode os.FileMode) {
	var buf [20]byte
	io.WriteString(h, f)
	binary.LittleEndian.PutUint64(buf[:8], uint64(size))
	binary.LittleEndian.PutUint64(buf[8:16], uint64(mtime.UnixNano()))
	// The mode too: a file made readable again changes nothing else.
	binary.LittleEndian.PutUint32(buf[16:], uint32(mode))
	h.Write(buf[:])
}

// lookPrint digests files twice from one look at each, as the decode cache's Look makes it: the
// stat digest statPrint makes, and the content digest of the names and contents of files and
// stdin, which decide what a compile would produce (a rewrite with the same bytes gives the same
// digest). One stat per file and check, where a look then a compile made three.
func lookPrint(files []string, stdin []byte, look func(string) (config.Looked, error)) (stat, content fingerprint, err error) {
	sh, ch := sha256.New(), sha256.New()
	var buf [8]byte
	if stdin != nil {
		io.WriteString(ch, "-")
		ch.Write([]byte{0})
		ch.Write(stdin)
		// The length ends the input, so that moving bytes from it to a file changes the digest.
		binary.LittleEndian.PutUint64(buf[:], uint64(len(stdin)))
		ch.Write(buf[:])
	}
	for _, f := range files {
		l, err := look(f)
		if err != nil {
			return fingerprint{}, fingerprint{}, fmt.Errorf("read %s: %w", f, err)
		}
		writeStat(sh, f, l.Size, l.ModTime, l.Mode)
		io.WriteString(ch, f)
		ch.Write([]byte{0})
		binary.LittleEndian.PutUint64(buf[:], l.Hash)
		ch.Write(buf[:])
	}
	sh.Sum(stat[:0])
	ch.Sum(content[:0])
	return stat, content, nil
}
