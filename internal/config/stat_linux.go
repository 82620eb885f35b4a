//go:build linux

package config

import (
	"os"
	"syscall"
	"time"
)

// statSys adds the change time and inode: a file replaced by another (an editor's rename, a
// ConfigMap's swapped link) or touched back to its old mtime changes them.
func statSys(info os.FileInfo, st *fileStat) {
	sys, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return // no change time: never settled
	}
	st.ctime = time.Unix(int64(sys.Ctim.Sec), int64(sys.Ctim.Nsec))
	st.dev, st.ino = uint64(sys.Dev), uint64(sys.Ino)
}
