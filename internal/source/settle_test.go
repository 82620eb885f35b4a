package source

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatcherSettlesFilesWrittenJustBeforeItStarted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup writes the config in dir and returns the path given to -f and how many files
		// it has; change alters one of them to declare new.example.com.
		setup  func(t *testing.T, dir string) (path string, files int)
		change func(t *testing.T, dir string)
	}{
		{
			name: "a folder of files, one edited in place",
			setup: func(t *testing.T, dir string) (string, int) {
				for i := range 5 {
					write(t, filepath.Join(dir, fmt.Sprintf("f%d.yaml", i)), entry(fmt.Sprintf("e%d", i), fmt.Sprintf("h%d.example.com", i)))
				}
				return dir, 5
			},
			change: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "f2.yaml"), entry("e2", "new.example.com"))
			},
		},
		{
			name:   "a ConfigMap folder whose ..data link is swapped",
			setup:  func(t *testing.T, dir string) (string, int) { configMap(t, dir, 1, "old.example.com"); return dir, 1 },
			change: func(t *testing.T, dir string) { configMap(t, dir, 2, "new.example.com") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path, n := tc.setup(t, dir)
			// A debounce of an hour: the files are looked at only on Reload, so the counts
			// below are of the looks and compiles this test asks for and of nothing else.
			h := start(t, Config{Paths: []string{path}, Debounce: time.Hour})
			stats := h.w.cache.Files.Stats
			reload := func(want Result) {
				t.Helper()
				before := h.w.Status().LastAttempt
				h.w.Reload()
				waitFor(t, "the reload is attempted", func() bool {
					st := h.w.Status()
					return !st.LastAttempt.Equal(before) && st.LastResult == want
				})
			}
			// Within the margin after the writes, a look reads every file again.
			reload(Unchanged)
			if st := stats(); st.Settled == 0 && st.Rereads != uint64(n) {
				t.Fatalf("a look before the files settled: stats %+v, want %d rereads", st, n)
			}
			// The margin is the real one, 2 s: the cache's is not the watcher's to shorten.
			waitFor(t, "the files are settled", func() bool { return stats().Settled == uint64(n) })
			before := stats()
			tc.change(t, dir)
			reload(Accepted)
			if got := strings.Join(h.hosts(), ","); !strings.Contains(got, "new.example.com") {
				t.Fatalf("applied hosts %s, want new.example.com among them", got)
			}
			st := stats()
			if st.Misses != before.Misses+1 || st.Hits != before.Hits+uint64(n-1) || st.Rereads != before.Rereads {
				t.Fatalf("the reload after the files settled: stats %+v from %+v; want the changed file decoded and none read again", st, before)
			}
		})
	}
}
