// Package source turns the files and folders given to `meshentry run` into compiled configs, and
// watches them: a change is compiled whole beside the serving config and handed on only when it
// has no error, so a bad edit never takes away what already works.
package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

const (
	// DefaultDebounce is how long the files must be quiet after an event before they are read,
	// so an editor's several writes make one reload. An atomic save (write and rename, or a
	// ConfigMap's link swap) sends its events within a millisecond, so 10 ms coalesces it
	// without adding a tenth of a second to every reload, as Istio's 100 ms did.
	DefaultDebounce = 10 * time.Millisecond
	// DefaultDebounceMax bounds the wait for quiet, as Istio's PILOT_DEBOUNCE_MAX does (10 s
	// there, for pushes to a fleet): files written without pause, as by a checkout of many
	// files, are read this long after the first event anyway.
	DefaultDebounceMax = time.Second
	// DefaultCheckInterval is how often the fingerprint check runs for mounts that send no events.
	DefaultCheckInterval = 5 * time.Second
	// maxLoggedFindings bounds the findings one reload logs; Status keeps them all.
	maxLoggedFindings = 20
)

// Config says what a Watcher reads and how often it looks.
type Config struct {
	// Paths are the files, folders and "-" as given to -f.
	Paths []string
	// Namespace is given to documents that name none.
	Namespace string
	// Stdin is what "-" read at startup; it is compiled again, unchanged, with every reload.
	Stdin []byte
	// CheckInterval is the period of the fingerprint check; 0 disables it.
	CheckInterval time.Duration
	// Debounce is the quiet wait after a file event; 0 means DefaultDebounce.
	Debounce time.Duration
	// DebounceMax bounds the wait for quiet after the first event, so a busy writer cannot
	// hold a reload off for ever; 0 means DefaultDebounceMax, and it is never below Debounce.
	DebounceMax time.Duration
	// Logger receives one line per reload accepted or refused; nil discards.
	Logger *slog.Logger
	// Compile holds options for every compile, such as the DNS proxy's address allocation.
	Compile []compile.Option
}

// Watcher reloads the config when its files change, on Reload, and by the periodic check.
type Watcher struct {
	cfg     Config
	log     *slog.Logger
	status  atomic.Pointer[Status]
	trigger chan struct{}
	// cache hands each compile the files and findings the last one made, so a reload decodes
	// and validates only the files that changed.
	cache *compile.Cache

	// Owned by Run's goroutine once it starts.
	cur            Status
	servingContent fingerprint
	seenContent    fingerprint
	seenErr        string
	// tickStat and tickErr are what the periodic check saw last, so that it reports a move
	// once, not at every tick until the debounced read catches up.
	tickStat    fingerprint
	tickErr     string
	watched     map[string]bool
	unwatchable map[string]bool
	// checks counts the looks at the files, so tests can wait for one instead of sleeping;
	// noEvents makes Run go without fsnotify, as on a mount that sends no events.
	checks   atomic.Uint64
	noEvents bool
	// compiled says a compile ran since Run last settled the decode cache (settle.go).
	compiled bool
}

// check kinds: what asked for a look at the files.
type checkKind uint8

const (
	// byEvent is a file event, or the periodic check finding the files' sizes or times moved,
	// once the files were quiet for the debounce.
	byEvent checkKind = iota
	// byTrigger is Reload.
	byTrigger
)

// New compiles the config at startup as version 1 and returns a Watcher ready to Run. The result
// is returned whatever its errors: what to do with an invalid startup config is the caller's call.
// The error is for inputs that cannot be read at all.
func New(cfg Config) (*Watcher, *compile.Result, error) {
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.DebounceMax <= 0 {
		cfg.DebounceMax = DefaultDebounceMax
	}
	cfg.DebounceMax = max(cfg.DebounceMax, cfg.Debounce)
	w := &Watcher{cfg: cfg, log: cfg.Logger, trigger: make(chan struct{}, 1), cache: compile.NewCache(), watched: map[string]bool{}, unwatchable: map[string]bool{}}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	// The stats come before the compile and the content digest from what it read, so each file
	// is read once (at 100,000 entries a read and hash of every file ahead of the compile was a
	// tenth of the startup): a write after the stat is then seen as a change on the next look,
	// at worst compiled once more, rather than missed.
	files, _, err := listFiles(cfg.Paths)
	if err != nil {
		return nil, nil, err
	}
	stats := make(config.Stats, len(files))
	stated := make(map[string]config.Looked, len(files))
	for _, f := range files {
		l, err := w.cache.Files.Stat(f, stats)
		if err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", f, err)
		}
		stated[f] = l
	}
	// At startup the analysis runs beside the build (nothing else does then), and its
	// findings are in res; a reload serves its snapshot before the analysis, which only warns,
	// is finished.
	res, err := w.compileLoaded(1, stats)
	if err != nil {
		return nil, nil, err
	}
	w.tickStat, w.seenContent, _ = lookPrint(files, w.cfg.Stdin, func(f string) (config.Looked, error) {
		l := stated[f]
		// A file the cache did not keep digests as 0, which the next look, finding its real
		// digest, sees as a change: compiled once more, never missed.
		l.Hash, _ = w.cache.Files.Decoded(f, stats)
		return l, nil
	})
	w.servingContent = w.seenContent
	w.cache.DeferAnalysis = true
	w.cur = Status{Version: 1, LoadedAt: time.Now(), LastResult: Loaded}
	w.serving(res)
	w.publish()
	return w, res, nil
}

// Status returns the watcher's state; it takes no lock and may be called from any goroutine.
func (w *Watcher) Status() Status { return *w.status.Load() }

// Reload asks Run to read the files now, skipping the debounce and the cheap stat check (SIGHUP
// does this). It never blocks: requests made while one is pending are merged into it.
func (w *Watcher) Reload() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Run watches the files until ctx ends, calling apply with each accepted config, from Run's own
// goroutine, before Status reports its version. Without inotify (no watches left, say) it logs a
// warning and keeps the periodic check and Reload.
func (w *Watcher) Run(ctx context.Context, apply func(*compile.Result)) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	fsw, err := fsnotify.NewWatcher()
	if w.noEvents && err == nil {
		fsw.Close()
		fsw, err = nil, errors.New("disabled by the test")
	}
	if err != nil {
		w.log.Warn("config file events unavailable; relying on the periodic check and SIGHUP", "err", err)
	} else {
		defer fsw.Close()
		events, errs = fsw.Events, fsw.Errors
		if _, dirs, err := listFiles(w.cfg.Paths); err == nil {
			w.watch(fsw, dirs)
		}
	}
	var tick <-chan time.Time
	if w.cfg.CheckInterval > 0 {
		t := time.NewTicker(w.cfg.CheckInterval)
		defer t.Stop()
		tick = t.C
	}
	debounce := stoppedTimer()
	defer debounce.Stop()
	var firstEvent time.Time // of the events waiting for quiet; zero when none wait
	wait := func() {
		now := time.Now()
		if firstEvent.IsZero() {
			firstEvent = now
		}
		deadline := firstEvent.Add(w.cfg.DebounceMax)
		debounce.Reset(max(0, min(w.cfg.Debounce, deadline.Sub(now))))
	}
	// A change made between New and the watches above sent no event to anyone: look once, after
	// the same quiet wait, since such a change may still be being written.
	wait()
	settling := stoppedTimer()
	defer settling.Stop()
	for {
		if w.compiled {
			w.compiled = false
			settling.Reset(0)
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else if ev.Op != fsnotify.Chmod {
				wait()
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow lost events: look at the files rather than guess which changed.
			w.log.Warn("config file watch error", "err", err)
			wait()
		case <-debounce.C:
			firstEvent = time.Time{}
			w.check(fsw, apply, byEvent)
		case <-tick:
			// A change found by the timer gets the same quiet wait as one found by an event:
			// a file being written is caught mid-write as easily by either.
			if w.statMoved(fsw) {
				wait()
			}
		case <-w.trigger:
			w.check(fsw, apply, byTrigger)
		case <-settling.C:
			w.settle(settling)
		}
	}
}

// watch adds the folders not yet watched and drops those no longer needed; fsw may be nil.
func (w *Watcher) watch(fsw *fsnotify.Watcher, dirs []string) {
	if fsw == nil {
		return
	}
	want := make(map[string]bool, len(dirs))
	for _, d := range dirs {
		want[d] = true
		if w.watched[d] {
			continue
		}
		if err := fsw.Add(d); err != nil {
			if !w.unwatchable[d] {
				w.unwatchable[d] = true // warned once; Add is tried again with every check
				w.log.Warn("cannot watch config folder; the periodic check and SIGHUP still cover it", "dir", d, "err", err)
			}
			continue
		}
		delete(w.unwatchable, d)
		w.watched[d] = true
	}
	for d := range w.watched {
		if !want[d] {
			fsw.Remove(d) // it may be gone already, which removed the watch
			delete(w.watched, d)
		}
	}
}

// check reads the files and reloads when their content changed since last seen. An event or
// the timer that finds the content last seen does nothing at all; Reload compiles anything that
// is not the serving content, even a change refused before.
func (w *Watcher) check(fsw *fsnotify.Watcher, apply func(*compile.Result), kind checkKind) {
	defer w.checks.Add(1)
	files, dirs, err := listFiles(w.cfg.Paths)
	if err != nil {
		w.ioFailure(err, kind)
		return
	}
	w.watch(fsw, dirs)
	stats := make(config.Stats, len(files))
	st, content, err := w.look(files, stats)
	if err != nil {
		w.ioFailure(err, kind)
		return
	}
	w.tickStat, w.tickErr, w.seenErr = st, "", ""
	if content == w.seenContent && kind != byTrigger {
		return
	}
	w.seenContent = content
	if content == w.servingContent {
		if kind == byTrigger || w.cur.LastResult == Refused {
			w.log.Info("config unchanged; still serving", "version", w.cur.Version)
		}
		w.attempted(Unchanged)
		return
	}
	w.reload(content, stats, apply)
}

// look stats and digests files, through the decode cache, adding their stats to stats for the
// compile that may follow.
func (w *Watcher) look(files []string, stats config.Stats) (st, content fingerprint, err error) {
	return lookPrint(files, w.cfg.Stdin, func(f string) (config.Looked, error) { return w.cache.Files.Look(f, stats) })
}

// statMoved is the periodic check's cheap look: whether the files' names, sizes or times, or
// the failure to list them, changed since the last look (the check that follows reports why).
func (w *Watcher) statMoved(fsw *fsnotify.Watcher) bool {
	defer w.checks.Add(1)
	files, dirs, err := listFiles(w.cfg.Paths)
	var st fingerprint
	if err == nil {
		w.watch(fsw, dirs)
		st, err = statPrint(files)
	}
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	moved := st != w.tickStat || errText != w.tickErr
	w.tickStat, w.tickErr = st, errText
	return moved
}

// reload compiles the changed files as the next version and applies them if they have no error.
func (w *Watcher) reload(content fingerprint, stats config.Stats, apply func(*compile.Result)) {
	start := time.Now()
	res, err := w.compile(w.cur.Version+1, stats)
	if err != nil {
		w.refuse(err.Error(), nil)
		return
	}
	if n := res.Errors(); n > 0 {
		errs, _, _ := diag.Split(res.Diagnostics)
		w.refuse(fmt.Sprintf("config has %d %s", n, plural(n, "error", "errors")), errs)
		return
	}
	apply(res)
	res.Finish()
	w.servingContent = content
	previous := w.cur.Services
	w.cur.Version++
	w.cur.LoadedAt = time.Now()
	w.cur.Accepted++
	w.serving(res)
	w.attempted(Accepted)
	if w.cur.Services == 0 && previous > 0 {
		// Valid, as Istio takes an empty ConfigMap, but far more often a truncated file or a
		// mount gone wrong: said before the routine line so that no one reads past it.
		w.log.Warn("config reload leaves no service declared: only what the outbound policy lets through is served",
			"version", w.cur.Version, "previous_services", previous, "files", w.cur.Files)
	}
	_, warns, _ := diag.Split(res.Diagnostics)
	w.log.Info("config reloaded", "version", w.cur.Version, "services", w.cur.Services, "documents", w.cur.Documents,
		"files", w.cur.Files, "warnings", len(warns), "took", time.Since(start).Round(time.Microsecond))
	for i, d := range res.Diagnostics {
		if i == maxLoggedFindings {
			w.log.Warn("more config findings not logged", "count", len(res.Diagnostics)-i)
			break
		}
		if d.Level == diag.Warning {
			w.log.Warn("config warning", "finding", d.String())
		} else {
			w.log.Info("config note", "finding", d.String())
		}
	}
}

// ioFailure refuses a change whose files cannot be read, once per distinct failure unless asked
// again by Reload, so a missing file does not count one refusal per periodic check.
func (w *Watcher) ioFailure(err error, kind checkKind) {
	if err.Error() == w.seenErr && kind != byTrigger {
		return
	}
	w.seenErr = err.Error()
	w.seenContent = fingerprint{} // once readable again, the files are compiled whatever they hold
	w.refuse(err.Error(), nil)
}

// refuse records and logs a refused attempt; the serving snapshot is left as it is.
func (w *Watcher) refuse(reason string, findings []diag.Diagnostic) {
	w.cur.Refused++
	w.cur.LastError = reason
	w.cur.LastErrorAt = time.Now()
	w.cur.LastErrorDiagnostics = findings
	w.attempted(Refused)
	lines := make([]string, 0, min(len(findings), maxLoggedFindings))
	for _, d := range findings[:min(len(findings), maxLoggedFindings)] {
		lines = append(lines, d.String())
	}
	if more := len(findings) - len(lines); more > 0 {
		lines = append(lines, fmt.Sprintf("and %d more", more))
	}
	w.log.Error("config reload refused", "serving_version", w.cur.Version,
		"reason", reason, "findings", strings.Join(lines, "; "))
}

// compile runs the pipeline over the paths, taking the files' stats the look just before made;
// stdin is given its startup bytes again.
func (w *Watcher) compile(version uint64, stats config.Stats) (*compile.Result, error) {
	res, err := w.compileLoaded(version, stats)
	if err != nil {
		return nil, fmt.Errorf("compile config: %w", err)
	}
	return res, nil
}

// compileLoaded is compile with the error as the load gave it: at startup, where a file that
// cannot be read is reported as the look before the compile reported it.
func (w *Watcher) compileLoaded(version uint64, stats config.Stats) (*compile.Result, error) {
	opts := config.Options{Namespace: w.cfg.Namespace, Stats: stats}
	if w.cfg.Stdin != nil {
		opts.Stdin = bytes.NewReader(w.cfg.Stdin)
	}
	res, err := w.cache.Paths(w.cfg.Paths, opts, version, w.cfg.Compile...)
	w.compiled = true // even a failed one may have cached files
	if err != nil {
		return nil, err
	}
	if res.Snapshot == nil {
		return nil, errors.New("no snapshot")
	}
	return res, nil
}

// serving records the counts of the config that now serves.
func (w *Watcher) serving(res *compile.Result) {
	w.cur.Files, w.cur.Documents, w.cur.Services = res.Files, res.Documents, len(res.Snapshot.Services)
	w.cur.Diagnostics = res.Diagnostics
}

// attempted records the outcome of an attempt and publishes the status.
func (w *Watcher) attempted(r Result) {
	w.cur.LastAttempt = time.Now()
	w.cur.LastResult = r
	w.publish()
}

// publish makes a copy of the loop's status readable by Status.
func (w *Watcher) publish() {
	s := w.cur
	w.status.Store(&s)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
