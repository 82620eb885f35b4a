package main

import (
	"io"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/accesslog"
)

// accessLogFlags say where `run` writes its access log and how.
type accessLogFlags struct {
	path   string
	format string
	buffer int
}

func (a *accessLogFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&a.path, "access-log", "-", `access log: a file to append to (reopened on SIGUSR1, as Envoy does, for logrotate), "-" for stdout, or "off"`)
	fl.StringVar(&a.format, "access-log-format", "text", "access log format: text (Istio's default line) or json (Istio's JSON keys)")
	fl.IntVar(&a.buffer, "access-log-buffer", 1024, "access-log lines waiting to be written (also at most 1 MiB); when the output is slower, lines are dropped and counted rather than traffic held up")
}

// open starts the access log the flags ask for, writing "-" to stdout. It returns the Logger
// (nil when the log is off, or no path is given, as in tests that build runFlags themselves),
// whose Dropped and WriteErrors counters the metrics may export, and the function that flushes
// and closes it.
func (a *accessLogFlags) open(stdout io.Writer, log *slog.Logger) (*accesslog.Logger, func(), error) {
	if a.path == "" || a.path == "off" {
		return nil, func() {}, nil
	}
	format, err := accesslog.ParseFormat(a.format)
	if err != nil {
		return nil, nil, usageError("--access-log-format: %v", err)
	}
	if a.buffer <= 0 {
		return nil, nil, usageError("--access-log-buffer must be positive, got %d", a.buffer)
	}
	out, closeOut := stdout, func() error { return nil }
	if a.path != "-" {
		f, err := openReopenFile(a.path)
		if err != nil {
			return nil, nil, &exitError{code: 2, err: err}
		}
		stopSignal := func() {}
		if reopenSignal != nil && log != nil {
			stopSignal = onSignal(reopenSignal, func() {
				if err := f.Reopen(); err != nil {
					log.Warn("access log not reopened; still writing the file open before", "err", err)
					return
				}
				log.Info("access log reopened", "path", a.path)
			})
		}
		out, closeOut = f, func() error {
			stopSignal()
			return f.Close()
		}
	}
	l := accesslog.New(out, accesslog.Options{Format: format, BufferLines: a.buffer, Logger: log})
	return l, func() {
		if err := l.Close(); err != nil {
			log.Warn("access log incomplete", "err", err, "write_errors", l.WriteErrors())
		}
		if n := l.Dropped(); n > 0 {
			log.Warn("access-log lines dropped because the output was slower than traffic", "dropped", n,
				"hint", "raise --access-log-buffer or write to a faster output")
		}
		if err := closeOut(); err != nil {
			log.Warn("closing the access log", "path", a.path, "err", err)
		}
	}, nil
}
