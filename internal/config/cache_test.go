package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func writeEntryFile(t *testing.T, path, name, host string) {
	t.Helper()
	body := fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s}\nspec:\n  hosts: [%s]\n  resolution: DNS\n  ports: [{number: 80, name: http, protocol: HTTP}]\n", name, host)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostsOf lists the documents' first hosts with their rank in Order, or "unordered" where a
// document's number is not above the one before.
func hostsOf(res Result) []string {
	var out []string
	for i, d := range res.Documents {
		rank := fmt.Sprint(i)
		if i > 0 && d.Order <= res.Documents[i-1].Order {
			rank = "unordered"
		}
		out = append(out, fmt.Sprintf("%s:%s", rank, d.ServiceEntry().GetHosts()[0]))
	}
	return out
}

func TestLoadWithACacheDecodesOnlyTheFilesThatChanged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, h := range []string{"a.com", "b.com", "c.com"} {
		writeEntryFile(t, filepath.Join(dir, fmt.Sprintf("%d.yaml", i)), fmt.Sprintf("e%d", i), h)
	}
	c := NewCache(0)
	load := func() Result {
		t.Helper()
		res, err := Load([]string{dir}, Options{Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := load()
	if st := c.Stats(); st.Misses != 3 || st.Hits != 0 || st.Files != 3 {
		t.Fatalf("first load: %+v, want 3 misses", st)
	}
	// The same length and modification time: only the content hash tells the change.
	mid := filepath.Join(dir, "1.yaml")
	info, _ := os.Stat(mid)
	writeEntryFile(t, mid, "e1", "x.com")
	if err := os.Chtimes(mid, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	second := load()
	if st := c.Stats(); st.Misses != 4 || st.Hits != 2 {
		t.Fatalf("second load: %+v, want 2 hits and 1 more miss", st)
	}
	if got, want := fmt.Sprint(hostsOf(second)), "[0:a.com 1:x.com 2:c.com]"; got != want {
		t.Fatalf("second load read %s, want %s", got, want)
	}
	if first.Documents[0] != second.Documents[0] || first.Documents[2] != second.Documents[2] {
		t.Fatal("an unchanged file in its place should give the very documents the last load gave")
	}
	if err := os.Remove(filepath.Join(dir, "0.yaml")); err != nil {
		t.Fatal(err)
	}
	third := load()
	if got, want := fmt.Sprint(hostsOf(third)), "[0:x.com 1:c.com]"; got != want {
		t.Fatalf("third load read %s, want %s (renumbered in load order)", got, want)
	}
	if got := fmt.Sprint(hostsOf(second)); got != "[0:a.com 1:x.com 2:c.com]" {
		t.Fatalf("a later load changed the documents an earlier one returned: %s", got)
	}
	if third.Documents[0].Spec != second.Documents[1].Spec {
		t.Fatal("a file whose documents moved should give copies sharing the decoded spec")
	}
	if fourth := load(); fourth.Documents[0] != third.Documents[0] || fourth.Documents[1] != third.Documents[1] {
		t.Fatal("the copies numbered anew should be what the next load gives")
	}
	if st := c.Stats(); st.Files != 2 {
		t.Fatalf("the removed file is still cached: %+v", st)
	}
}

func TestCacheCountsTheFilesItHasNoRoomFor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 3 {
		writeEntryFile(t, filepath.Join(dir, fmt.Sprintf("%d.yaml", i)), fmt.Sprintf("e%d", i), fmt.Sprintf("h%d.com", i))
	}
	c := NewCache(2)
	for range 2 {
		res, err := Load([]string{dir}, Options{Cache: c})
		if err != nil || len(res.Documents) != 3 {
			t.Fatalf("load: %d documents, %v", len(res.Documents), err)
		}
	}
	if st := c.Stats(); st.Files != 2 || st.Evictions != 2 || st.Hits != 2 {
		t.Fatalf("stats %+v, want 2 files held, the third refused at each load", st)
	}
}

func TestCacheTrustsAStatOnlyOnceTheFileHasSettled(t *testing.T) {
	t.Parallel()
	path, c, load := oneFileCache(t, -time.Hour) // every read counts as long after the file's last change
	load()
	d1, err := c.Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := load(); got != "[0:a.com]" || c.Stats().Hits != 1 {
		t.Fatalf("an unchanged settled file: read %s, stats %+v, want a hit", got, c.Stats())
	}
	// Same size, mtime put back: the change time still moves, which no one can set.
	rewriteKeepingMtime(t, path, "a", "b.com")
	if d2, err := c.Digest(path); err != nil || d2 == d1 {
		t.Fatalf("digest after a rewrite = %x (%v), the same as before", d2, err)
	}
	if got := load(); got != "[0:b.com]" {
		t.Fatalf("a rewrite that kept size and mtime was not read: %s", got)
	}
}

func TestAFileGivenTwiceGetsADocumentForEachPlace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	writeEntryFile(t, path, "a", "a.com")
	c := NewCache(0)
	var last Result
	for round := range 3 {
		res, err := Load([]string{path, dir, path}, Options{Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmt.Sprint(hostsOf(res)), "[0:a.com 1:a.com 2:a.com]"; got != want {
			t.Fatalf("round %d read %s, want %s", round, got, want)
		}
		if res.Documents[0] == res.Documents[1] || res.Documents[1] == res.Documents[2] || res.Documents[0] == res.Documents[2] {
			t.Fatalf("round %d: one document stands in two places", round)
		}
		if round > 0 && fmt.Sprint(hostsOf(last)) != "[0:a.com 1:a.com 2:a.com]" {
			t.Fatalf("round %d renumbered the documents of round %d: %s", round, round-1, hostsOf(last))
		}
		last = res
	}
}

func TestDecodedIsTheDigestOfWhatTheLoadRead(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.yaml")
	writeEntryFile(t, path, "a", "a.example.com")
	c := NewCache(0)
	stats := Stats{}
	if _, err := c.Stat(path, stats); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Decoded(path, stats); ok {
		t.Fatal("Decoded knows a file no load read")
	}
	if _, err := Load([]string{path}, Options{Cache: c, Stats: stats}); err != nil {
		t.Fatal(err)
	}
	read, ok := c.Decoded(path, stats)
	if want, _ := c.Digest(path); !ok || read != want {
		t.Fatalf("Decoded = %x, %v; the file's digest is %x", read, ok, want)
	}
	// Written after the load: the digest of what was read stays, and a look sees the change.
	writeEntryFile(t, path, "a", "longer.example.com")
	if again, ok := c.Decoded(path, stats); !ok || again != read {
		t.Fatalf("after a write, Decoded = %x, %v; want what the load read, %x", again, ok, read)
	}
	if now, _ := c.Digest(path); now == read {
		t.Fatal("a look after the write gives the digest of the content before it")
	}
}

func TestDecodedIsCalledWithTheFilesDecodedAnewOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeEntryFile(t, a, "a", "a.example.com")
	writeEntryFile(t, b, "b", "b.example.com")
	c := NewCache(0)
	c.margin = 0 // a stat proves a file unchanged at once
	load := func() (map[string]int, Result) {
		var mu sync.Mutex
		got := map[string]int{}
		res, err := Load([]string{dir}, Options{Cache: c, Decoded: func(docs []*Document) {
			mu.Lock()
			defer mu.Unlock()
			for _, d := range docs {
				got[filepath.Base(d.File)]++
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		return got, res
	}
	if got, res := load(); got["a.yaml"] != 1 || got["b.yaml"] != 1 || len(res.Documents) != 2 {
		t.Fatalf("first load: Decoded saw %v of %d documents, want each file's one", got, len(res.Documents))
	}
	writeEntryFile(t, b, "b", "longer-b.example.com") // a new size, whatever the clock
	if got, _ := load(); len(got) != 1 || got["b.yaml"] != 1 {
		t.Fatalf("after b changed: Decoded saw %v, want b's document alone", got)
	}
}

// rewriteKeepingMtime writes path anew declaring host, which must be as long as the host
// before, and puts its mtime back, so that only the change time (and the content) tells: it
// writes until the change time shows the move, which happens at the kernel's clock tick.
func rewriteKeepingMtime(t *testing.T, path, name, host string) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := statOf(path)
	for deadline := time.Now().Add(5 * time.Second); ; {
		writeEntryFile(t, path, name, host)
		if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
			t.Fatal(err)
		}
		now, _ := statOf(path)
		if now.size != before.size {
			t.Fatalf("the rewrite changed the size from %d to %d", before.size, now.size)
		}
		if now.ctime != before.ctime || time.Now().After(deadline) {
			return
		}
	}
}

func TestSettleProvesByAReadLaterTheFilesLoadedJustAfterTheyWereWritten(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// between changes the file after the load and before Settle; after, once Settle ran.
		between, after func(t *testing.T, c *Cache, path string)
		settled        bool
		// want is what the load after Settle reads.
		want string
	}{
		{name: "settles a file unchanged since the load", settled: true, want: "[0:a.com]"},
		{
			name: "leaves a file rewritten with the same size and mtime",
			between: func(t *testing.T, _ *Cache, path string) {
				rewriteKeepingMtime(t, path, "a", "b.com")
			},
			want: "[0:b.com]",
		},
		{
			// As on a file system whose times are coarser than the rewrite was quick: the stat
			// is the cached one, and only the content hash tells.
			name: "leaves a file rewritten within the clock tick of the load's read",
			between: func(t *testing.T, c *Cache, path string) {
				writeEntryFile(t, path, "a", "b.com")
				st, err := statOf(path)
				if err != nil {
					t.Fatal(err)
				}
				c.mu.Lock()
				c.files[path].stat = st
				c.mu.Unlock()
			},
			want: "[0:b.com]",
		},
		{
			name:    "leaves a file removed",
			between: func(t *testing.T, _ *Cache, path string) { os.Remove(path) },
			want:    "[]",
		},
		{
			name:    "still sees a file rewritten after, with the same size and mtime",
			after:   func(t *testing.T, _ *Cache, path string) { rewriteKeepingMtime(t, path, "a", "b.com") },
			settled: true,
			want:    "[0:b.com]",
		},
		{
			name:    "still sees a file rewritten after, longer",
			after:   func(t *testing.T, _ *Cache, path string) { writeEntryFile(t, path, "a", "longer.com") },
			settled: true,
			want:    "[0:longer.com]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path, c, load := oneFileCache(t, time.Hour) // the load is well within the margin after the write
			load()
			if _, err := c.Digest(path); err != nil || c.Stats().Rereads != 1 {
				t.Fatalf("a look at a file just loaded, not settled: %v, stats %+v; want one reread", err, c.Stats())
			}
			if next := c.Settle(time.Now()); next < 59*time.Minute || next > time.Hour+time.Second || c.Stats().Settled != 0 {
				t.Fatalf("Settle within the margin: next %v, stats %+v; want about an hour and nothing settled", next, c.Stats())
			}
			if tc.between != nil {
				tc.between(t, c, path)
			}
			c.margin = 0 // the margin has passed
			if next := c.Settle(time.Now()); next != 0 {
				t.Fatalf("Settle past the margin: next %v, want 0 (no file left to wait for)", next)
			}
			if got := c.Stats().Settled; got != map[bool]uint64{false: 0, true: 1}[tc.settled] {
				t.Fatalf("Settle settled %d files, want settled %v", got, tc.settled)
			}
			if tc.after != nil {
				tc.after(t, c, path)
			}
			before := c.Stats()
			if got := load(); got != tc.want {
				t.Fatalf("the load after Settle read %s, want %s", got, tc.want)
			}
			if _, err := c.Digest(path); tc.settled && tc.after == nil {
				st := c.Stats()
				if err != nil || st.Hits != before.Hits+1 || st.Misses != before.Misses || st.Rereads != before.Rereads {
					t.Fatalf("a load and a look after Settle: %v, stats %+v from %+v; want a hit and no read", err, st, before)
				}
			}
		})
	}
}

// oneFileCache writes one entry file in a folder of its own and returns its path, a cache of
// that margin, and a load of the folder through the cache that returns the hosts loaded.
func oneFileCache(t *testing.T, margin time.Duration) (path string, c *Cache, load func() string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "a.yaml")
	writeEntryFile(t, path, "a", "a.com")
	c = NewCache(0)
	c.margin = margin
	return path, c, func() string {
		t.Helper()
		res, err := Load([]string{dir}, Options{Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(hostsOf(res))
	}
}
