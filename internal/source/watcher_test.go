package source

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
)

// entry is a valid ServiceEntry declaring host.
func entry(name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
`, name, host)
}

// badEntry misspells a field on line 6, which the strict decoder refuses.
const badEntry = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: bad}\nspec:\n  hosts: [bad.example.com]\n  resolutoin: DNS\n"

// harness runs a Watcher and records what it applied.
type harness struct {
	w       *Watcher
	mu      sync.Mutex
	applied []*compile.Result
}

func (h *harness) hosts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.applied) == 0 {
		return nil
	}
	var out []string
	for _, s := range h.applied[len(h.applied)-1].Snapshot.Services {
		out = append(out, s.Host)
	}
	return out
}

func (h *harness) appliedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.applied)
}

// start makes a Watcher over paths and runs it until the test ends, checking that Run returns.
func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	return startWith(t, cfg, false)
}

// startWith is start, without file events when noEvents is set.
func startWith(t *testing.T, cfg Config, noEvents bool) *harness {
	t.Helper()
	if cfg.Debounce == 0 {
		// The changes here take several steps (a write in place, a link swap, a folder and a
		// file); the 10 ms default coalesces them on an idle core, but not on a starved CI one.
		cfg.Debounce = 100 * time.Millisecond
	}
	w, res, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if res.Errors() != 0 {
		t.Fatalf("startup config has errors: %v", res.Diagnostics)
	}
	w.noEvents = noEvents
	h := &harness{w: w}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, func(r *compile.Result) {
			h.mu.Lock()
			h.applied = append(h.applied, r)
			h.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return h
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitChecks waits until the watcher has looked at the files n more times than it had.
func waitChecks(t *testing.T, w *Watcher, n uint64) {
	t.Helper()
	base := w.checks.Load()
	waitFor(t, fmt.Sprintf("%d more checks ran", n), func() bool { return w.checks.Load() >= base+n })
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// renameOver replaces path the way editors and `kubectl cp` do: a new file renamed onto it.
func renameOver(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp~"
	write(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherReloadsWhenTheFilesChange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup writes the startup config in dir and returns the path given to -f.
		setup func(t *testing.T, dir string) string
		// change alters the config so that it declares new.example.com.
		change func(t *testing.T, dir string)
	}{
		{
			name: "reloads a file edited in place",
			setup: func(t *testing.T, dir string) string {
				write(t, dir+"/a.yaml", entry("a", "old.example.com"))
				return dir + "/a.yaml"
			},
			change: func(t *testing.T, dir string) { write(t, dir+"/a.yaml", entry("a", "new.example.com")) },
		},
		{
			name: "reloads a file an editor renamed over",
			setup: func(t *testing.T, dir string) string {
				write(t, dir+"/a.yaml", entry("a", "old.example.com"))
				return dir + "/a.yaml"
			},
			change: func(t *testing.T, dir string) { renameOver(t, dir+"/a.yaml", entry("a", "new.example.com")) },
		},
		{
			name: "reloads a file of a folder",
			setup: func(t *testing.T, dir string) string {
				write(t, dir+"/a.yaml", entry("a", "old.example.com"))
				return dir
			},
			change: func(t *testing.T, dir string) { write(t, dir+"/a.yaml", entry("a", "new.example.com")) },
		},
		{
			name: "reloads a folder that gains a file in a new subfolder",
			setup: func(t *testing.T, dir string) string {
				write(t, dir+"/a.yaml", entry("a", "old.example.com"))
				return dir
			},
			change: func(t *testing.T, dir string) {
				os.Mkdir(dir+"/sub", 0o755)
				write(t, dir+"/sub/b.yaml", entry("b", "new.example.com"))
			},
		},
		{
			name: "reloads a ConfigMap file whose ..data link is swapped",
			setup: func(t *testing.T, dir string) string {
				configMap(t, dir, 1, "old.example.com")
				return dir + "/config.yaml"
			},
			change: func(t *testing.T, dir string) { configMap(t, dir, 2, "new.example.com") },
		},
		{
			name: "reloads a folder named through a link",
			setup: func(t *testing.T, dir string) string {
				linkedFolder(t, dir, "v1", "old.example.com")
				return dir + "/current"
			},
			change: func(t *testing.T, dir string) { write(t, dir+"/v1/a.yaml", entry("a", "new.example.com")) },
		},
		{
			name:   "reloads a ConfigMap folder whose ..data link is swapped, reading each document once",
			setup:  func(t *testing.T, dir string) string { configMap(t, dir, 1, "old.example.com"); return dir },
			change: func(t *testing.T, dir string) { configMap(t, dir, 2, "new.example.com") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := tc.setup(t, dir)
			h := start(t, Config{Paths: []string{path}})
			tc.change(t, dir)
			// Apply comes before the status reports the version, so both are waited for.
			waitFor(t, "the new host is applied", func() bool {
				return strings.Contains(strings.Join(h.hosts(), ","), "new.example.com") && h.w.Status().Version >= 2
			})
			st := h.w.Status()
			if st.Version != 2 || st.Accepted != 1 || st.LastResult != Accepted || h.appliedCount() != 1 {
				t.Fatalf("after one change: status %+v, %d applied; want version 2 from one accepted reload", st, h.appliedCount())
			}
			if got := h.applied[0].Snapshot.Version; got != 2 {
				t.Fatalf("applied snapshot has version %d, want 2", got)
			}
			if strings.HasSuffix(tc.name, "each document once") && st.Documents != 1 {
				t.Fatalf("read %d documents from the ConfigMap folder, want 1 (the hidden ..TIMESTAMP copy must be skipped)", st.Documents)
			}
		})
	}
}

// linkedFolder writes dir/gen/a.yaml declaring host and points the link dir/current at gen,
// renaming a new link over the old one as `ln -sfn` does.
func linkedFolder(t *testing.T, dir, gen, host string) {
	t.Helper()
	if err := os.Mkdir(filepath.Join(dir, gen), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, gen, "a.yaml"), entry("a", host))
	if err := os.Symlink(gen, filepath.Join(dir, "current.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "current.tmp"), filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
}

// configMap lays out dir as Kubernetes mounts a ConfigMap: config.yaml -> ..data/config.yaml,
// ..data -> ..gen<n>; a later generation is swapped in by renaming a new link over ..data.
func configMap(t *testing.T, dir string, gen int, host string) {
	t.Helper()
	g := fmt.Sprintf("..gen%d", gen)
	if err := os.Mkdir(filepath.Join(dir, g), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, g, "config.yaml"), entry("cm", host))
	if err := os.Symlink(g, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if gen == 1 {
		if err := os.Symlink("..data/config.yaml", filepath.Join(dir, "config.yaml")); err != nil {
			t.Fatal(err)
		}
	} else {
		os.RemoveAll(filepath.Join(dir, fmt.Sprintf("..gen%d", gen-1)))
	}
}

func TestWatcherIgnoresARewriteWithTheSameContent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.yaml")
	write(t, path, entry("a", "same.example.com"))
	h := start(t, Config{Paths: []string{path}, CheckInterval: 20 * time.Millisecond})
	renameOver(t, path, entry("a", "same.example.com"))
	later := time.Now().Add(time.Minute)
	os.Chtimes(path, later, later)
	// The event's check and at least two timer checks (one that sees the new mtime).
	waitChecks(t, h.w, 3)
	st := h.w.Status()
	if st.Version != 1 || h.appliedCount() != 0 || !st.LastAttempt.IsZero() || st.LastResult != Loaded {
		t.Fatalf("a rewrite with the same bytes changed something: status %+v, %d applied", st, h.appliedCount())
	}
}

func TestWatcherRefusesAnInvalidChangeWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir+"/a.yaml", entry("a", "a.example.com"))
	h := start(t, Config{Paths: []string{dir}, CheckInterval: 20 * time.Millisecond})
	// A valid new file together with an invalid one: the valid one must not be applied either.
	write(t, dir+"/b.yaml", entry("b", "b.example.com")+"---\n"+badEntry)
	waitFor(t, "the change is refused", func() bool { return h.w.Status().Refused == 1 })
	st := h.w.Status()
	t.Run("keeps the old snapshot serving", func(t *testing.T) {
		if st.Version != 1 || h.appliedCount() != 0 {
			t.Fatalf("version %d, %d applied after an invalid change; want 1 and none", st.Version, h.appliedCount())
		}
	})
	t.Run("records the finding with file and line", func(t *testing.T) {
		want := dir + `/b.yaml:15: ServiceEntry default/bad: spec.resolutoin: unknown field "resolutoin" (did you mean "resolution"?)`
		if st.LastResult != Refused || len(st.LastErrorDiagnostics) != 1 || st.LastErrorDiagnostics[0].String() != want {
			t.Fatalf("status %+v\nwant one finding %q", st, want)
		}
		if st.LastError != "config has 1 error" {
			t.Fatalf("LastError = %q", st.LastError)
		}
	})
	t.Run("does not count the same refused content again on later checks", func(t *testing.T) {
		waitChecks(t, h.w, 3)
		if n := h.w.Status().Refused; n != 1 {
			t.Fatalf("refused %d times, want 1", n)
		}
	})
	t.Run("accepts the corrected change as the next version", func(t *testing.T) {
		write(t, dir+"/b.yaml", entry("b", "b.example.com"))
		waitFor(t, "the fix is applied", func() bool { return h.w.Status().Version == 2 })
		st := h.w.Status()
		if st.Accepted != 1 || st.LastResult != Accepted || st.Services != 2 || st.LastErrorDiagnostics == nil {
			t.Fatalf("status %+v; want version 2 with both services, the old refusal still on record", st)
		}
	})
}

func TestWatcherCountsAnUnreadableFileOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, dir+"/a.yaml", entry("a", "a.example.com"))
	h := start(t, Config{Paths: []string{dir + "/a.yaml"}, CheckInterval: 20 * time.Millisecond})
	os.Remove(dir + "/a.yaml")
	waitFor(t, "the missing file is refused", func() bool { return h.w.Status().Refused == 1 })
	waitChecks(t, h.w, 3)
	st := h.w.Status()
	if st.Refused != 1 || st.Version != 1 || !strings.Contains(st.LastError, "a.yaml") {
		t.Fatalf("status %+v; want one refusal naming the file, version 1", st)
	}
	write(t, dir+"/a.yaml", entry("a", "a.example.com"))
	waitFor(t, "the file back as it was is seen", func() bool { return h.w.Status().LastResult == Unchanged })
	if st := h.w.Status(); st.Version != 1 || h.appliedCount() != 0 {
		t.Fatalf("the same content back gave version %d, %d applied; want no reload", st.Version, h.appliedCount())
	}
}

func TestWatcherReloadTrigger(t *testing.T) {
	t.Parallel()
	t.Run("reads the files at once, without waiting for events or the timer", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "a.yaml")
		write(t, path, entry("a", "old.example.com"))
		// A debounce of an hour and no timer: only Reload can find the change in time.
		h := start(t, Config{Paths: []string{path}, Debounce: time.Hour})
		write(t, path, entry("a", "new.example.com"))
		h.w.Reload()
		waitFor(t, "the change is applied", func() bool { return h.w.Status().Version == 2 })
		if got := h.hosts(); len(got) != 1 || got[0] != "new.example.com" {
			t.Fatalf("applied hosts %v", got)
		}
	})
	t.Run("records an unchanged attempt without a new version", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "a.yaml")
		write(t, path, entry("a", "a.example.com"))
		h := start(t, Config{Paths: []string{path}})
		h.w.Reload()
		waitFor(t, "the attempt is recorded", func() bool { return h.w.Status().LastResult == Unchanged })
		if st := h.w.Status(); st.Version != 1 || st.Accepted != 0 || h.appliedCount() != 0 {
			t.Fatalf("status %+v after Reload of unchanged files", st)
		}
	})
}

func TestWatcherPeriodicCheckFindsChangesWithoutEvents(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.yaml")
	write(t, path, entry("a", "old.example.com"))
	// No file events, as on a mount that sends none: the 30 ms fingerprint check must find it.
	h := startWith(t, Config{Paths: []string{path}, CheckInterval: 30 * time.Millisecond}, true)
	write(t, path, entry("a", "new.example.com"))
	waitFor(t, "the change is applied", func() bool { return h.w.Status().Version == 2 })
}

func TestWatcherCompilesStdinAgainWithEachReload(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.yaml")
	write(t, path, entry("a", "old.example.com"))
	h := start(t, Config{Paths: []string{"-", path}, Stdin: []byte(entry("in", "stdin.example.com"))})
	write(t, path, entry("a", "new.example.com"))
	waitFor(t, "the change is applied", func() bool { return h.w.Status().Version == 2 })
	if got := strings.Join(h.hosts(), ","); got != "stdin.example.com,new.example.com" && got != "new.example.com,stdin.example.com" {
		t.Fatalf("applied hosts %q; want the stdin document kept beside the changed file", got)
	}
}

func TestNewFailsOnAPathThatCannotBeRead(t *testing.T) {
	t.Parallel()
	_, _, err := New(Config{Paths: []string{filepath.Join(t.TempDir(), "missing.yaml")}})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("New = %v, want an error naming the file", err)
	}
}

func TestWatcherReadsFilesThatNeverGoQuiet(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.yaml")
	write(t, path, entry("a", "old.example.com"))
	h := start(t, Config{Paths: []string{path}, Debounce: 100 * time.Millisecond, DebounceMax: 500 * time.Millisecond})
	// A writer that touches the file every 20 ms for up to 5 s would hold a plain 100 ms
	// debounce off for ever; the wait is capped at DebounceMax.
	stop := make(chan struct{})
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			select {
			case <-stop:
				return
			case <-tick.C:
				os.WriteFile(path, []byte(entry("a", "new.example.com")), 0o644)
			}
		}
	}()
	defer func() { close(stop); <-writing }()
	waitFor(t, "the change is applied", func() bool { return h.w.Status().Version >= 2 })
	select {
	case <-writing:
		t.Fatal("the change was applied only once the writer stopped")
	default:
	}
}

func TestWatcherReportsTheAnalysisOfAReloadItServedFirst(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), entry("a", "shared.example.com"))
	h := start(t, Config{Paths: []string{dir}})
	if d := h.w.Status().Diagnostics; len(d) != 0 {
		t.Fatalf("one entry alone has findings: %v", d)
	}
	other := strings.Replace(entry("b", "shared.example.com"), "metadata: {name: b}", "metadata: {name: b, namespace: team}", 1)
	write(t, filepath.Join(dir, "b.yaml"), other)
	waitFor(t, "the second file is served", func() bool { return h.w.Status().Version >= 2 })
	found := false
	for _, d := range h.w.Status().Diagnostics {
		found = found || strings.Contains(d.String(), "ME2003")
	}
	if !found {
		t.Fatalf("the status after the reload lacks the host shared by two namespaces (ME2003): %v", h.w.Status().Diagnostics)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if last := h.applied[len(h.applied)-1]; len(last.Diagnostics) == 0 {
		t.Fatal("the applied result was not given its analysis")
	}
}

func TestNewDigestsTheFilesItCompiledAsALookAtThemDoes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i, host := range []string{"a.example.com", "b.example.com", "c.example.com"} {
		write(t, filepath.Join(dir, fmt.Sprintf("f%d.yaml", i)), entry(fmt.Sprintf("e%d", i), host))
	}
	w, _, err := New(Config{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := listFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	st, content, err := w.look(files, config.Stats{})
	if err != nil {
		t.Fatal(err)
	}
	if st != w.tickStat || content != w.seenContent || content != w.servingContent {
		t.Fatal("the digests New made from its compile differ from a look at the same files: the first check would reload them")
	}
}
