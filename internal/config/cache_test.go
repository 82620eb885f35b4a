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
	dir := t.TempDir()
	path := filepath.Join(dir, "a.yaml")
	writeEntryFile(t, path, "a", "a.com")
	c := NewCache(0)
	c.margin = -time.Hour // every read counts as long after the file's last change
	load := func() string {
		t.Helper()
		res, err := Load([]string{dir}, Options{Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(hostsOf(res))
	}
	load()
	d1, err := c.Digest(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := load(); got != "[0:a.com]" || c.Stats().Hits != 1 {
		t.Fatalf("an unchanged settled file: read %s, stats %+v, want a hit", got, c.Stats())
	}
	// Same size, mtime put back: the change time still moves, which no one can set.
	info, _ := os.Stat(path)
	before, _ := statOf(path)
	// The change time moves at the kernel's clock tick: write until it shows.
	for deadline := time.Now().Add(5 * time.Second); ; {
		writeEntryFile(t, path, "a", "b.com")
		if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
			t.Fatal(err)
		}
		if now, _ := statOf(path); now.ctime != before.ctime || time.Now().After(deadline) {
			break
		}
	}
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
