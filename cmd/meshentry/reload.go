package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/source"
)

// maxStdinBytes bounds the config read from "-": it is kept in memory for every reload.
const maxStdinBytes = 64 << 20

// reloadFlags tune how `run` notices config changes.
type reloadFlags struct {
	checkInterval time.Duration
	debounce      time.Duration
	debounceMax   time.Duration
}

func (r *reloadFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&r.checkInterval, "config-check-interval", source.DefaultCheckInterval, "how often the -f files are fingerprinted (names, sizes, times, contents) to catch changes that sent no file event, as on some volume mounts; 0 disables it")
	fl.DurationVar(&r.debounce, "reload-debounce", source.DefaultDebounce, "quiet time after a file event before the files are read, so one save that writes several times makes one reload")
	fl.DurationVar(&r.debounceMax, "reload-debounce-max", source.DefaultDebounceMax, "longest wait after the first file event before the files are read, however busy the writer")
}

// loadSource compiles the -f inputs for startup as version 1 and returns the Watcher that will
// reload them; "-" is read here, once, and compiled again unchanged with every reload.
func loadSource(cmd *cobra.Command, f *runFlags, log *slog.Logger, opts ...compile.Option) (*source.Watcher, *compile.Result, error) {
	if len(f.src.files) == 0 && !f.kube.enabled {
		return nil, nil, usageError("no config given: pass -f FILE, -f FOLDER or -f -, or --kube")
	}
	if f.reload.checkInterval < 0 || f.reload.debounce < 0 || f.reload.debounceMax < 0 {
		return nil, nil, usageError("--config-check-interval, --reload-debounce and --reload-debounce-max must not be negative")
	}
	var stdin []byte
	if slices.Contains(f.src.files, "-") {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxStdinBytes+1))
		if err != nil {
			return nil, nil, &exitError{code: 2, err: fmt.Errorf("read -: %w", err)}
		}
		if len(b) > maxStdinBytes {
			return nil, nil, &exitError{code: 2, err: fmt.Errorf("read -: more than %d MiB; give the config as a file", maxStdinBytes>>20)}
		}
		stdin = b
	}
	w, res, err := source.New(source.Config{Paths: f.src.files, Namespace: f.src.namespace, Stdin: stdin,
		CheckInterval: f.reload.checkInterval, Debounce: f.reload.debounce, DebounceMax: f.reload.debounceMax, Logger: log, Compile: opts})
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	if res.Errors() == 0 && len(res.Snapshot.Services) == 0 && !f.kube.enabled {
		// Valid, but more often -f naming the wrong folder, or files without a .yaml, .yml or
		// .json ending, than what the operator meant.
		log.Warn("the config declares no service: only what the outbound policy lets through is served",
			"paths", strings.Join(f.src.files, ","), "files", res.Files, "documents", res.Documents)
	}
	return w, res, nil
}

// startReload runs the config source, handing every accepted config to apply, and reloads on
// SIGHUP. The returned function stops both and waits for them.
func startReload(ctx context.Context, w configSource, apply func(*compile.Result)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		w.Run(ctx, apply)
	})
	stopHUP := onSIGHUP(w.Reload)
	return func() {
		stopHUP()
		cancel()
		wg.Wait()
	}
}

// onSIGHUP calls reload for each SIGHUP until the returned function is called, which restores
// the default action (terminating the process) only after the handler goroutine has finished.
func onSIGHUP(reload func()) (stop func()) { return onSignal(syscall.SIGHUP, reload) }

// onSignal calls fn for each s as onSIGHUP does for SIGHUP.
func onSignal(s os.Signal, fn func()) (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, s)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-sig:
				fn()
			case <-done:
				return
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(sig)
			close(done)
			wg.Wait()
		})
	}
}
