// Package accesslog is a telemetry.Sink that writes one line per finished request and per
// closed piped connection, in Istio's default text format or its JSON form. Lines are formatted
// on the caller into a bounded batch that one writer goroutine takes whole: when the batch is
// full the line is dropped and counted, so a slow disk or a blocked stdout never holds up
// traffic.
package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// Format selects how a line is written.
type Format uint8

const (
	// Text is Istio's default text format: Envoy's default line with the upstream cluster,
	// downstream addresses and SNI after it.
	Text Format = iota
	// JSON is one JSON object a line, with the keys of Istio's JSON access log.
	JSON
)

// ParseFormat turns a --access-log-format value ("text" or "json") into a Format.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("access log format %q: want text or json", s)
}

// Options tunes a Logger; zero fields take the defaults shown.
type Options struct {
	// Format is Text (the zero value) or JSON.
	Format Format
	// BufferLines bounds the lines waiting for the writer (1024).
	BufferLines int
	// BufferBytes bounds their bytes together (1 MiB), so long lines cannot pile up memory.
	BufferBytes int
	// FlushInterval is the longest a written line waits in the output buffer (1s, Envoy's
	// file_flush_interval).
	FlushInterval time.Duration
	// Logger receives write failures; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.BufferLines <= 0 {
		o.BufferLines = 1024
	}
	if o.BufferBytes <= 0 {
		o.BufferBytes = 1 << 20
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Logger is the access-log Sink. Its methods may be called from many goroutines at once.
//
// Lines are appended to one pending batch under a mutex, and the writer goroutine takes the
// whole batch at each flush interval, or sooner once the batch is half its bound: under load
// it wakes once per many lines, not once per line, which on the data path is a futex and a
// goroutine hand-off saved per request (Envoy's workers likewise fill a buffer that its flush
// thread writes).
type Logger struct {
	opts Options
	out  *bufio.Writer
	dst  io.Writer

	mu      sync.Mutex
	pending []byte // formatted lines the writer has not taken yet
	lines   int    // how many lines pending holds
	spare   []byte // the batch the writer wrote last, given back for the next swap
	closed  bool   // the writer took its last batch: later lines are dropped
	// wakeBytes and wakeLines are the fill at which a line wakes the writer before its tick.
	wakeBytes, wakeLines int

	wake    chan struct{} // cap 1: the batch filled up
	dropped atomic.Uint64
	written atomic.Uint64
	failed  atomic.Uint64
	closing atomic.Bool
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	// Owned by the writer goroutine; err is read by Close once it ended.
	failing bool
	err     error
}

// batchBytes is the capacity a batch starts with, bufio's buffer: one write(2). A batch wakes
// the writer at half of it, which leaves the other half for the lines that come before the
// writer takes it.
const batchBytes = 64 << 10

// New starts a Logger writing to w; Close stops it. w is written from one goroutine only.
func New(w io.Writer, o Options) *Logger {
	o = o.withDefaults()
	l := &Logger{
		opts: o, dst: w, out: bufio.NewWriterSize(w, batchBytes),
		pending:   make([]byte, 0, min(batchBytes, o.BufferBytes)),
		wakeBytes: max(min(batchBytes, o.BufferBytes)/2, 1), wakeLines: max(o.BufferLines/2, 1),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.run()
	return l
}

// Request writes the line of a finished HTTP request.
func (l *Logger) Request(r *telemetry.Request) {
	if l.closing.Load() {
		l.dropped.Add(1)
		return
	}
	var ln line
	ln.fromRequest(r)
	l.enqueue(&ln)
}

// ConnOpened writes nothing: as Envoy's TCP proxy does by default, a connection is logged once,
// when it closes.
func (l *Logger) ConnOpened(*telemetry.Conn) {}

// ConnClosed writes the line of a piped connection that closed.
func (l *Logger) ConnClosed(c *telemetry.Conn) {
	if l.closing.Load() {
		l.dropped.Add(1)
		return
	}
	var ln line
	ln.fromConn(c)
	l.enqueue(&ln)
}

// Dropped counts the lines dropped because the queue was full (or the Logger closed).
func (l *Logger) Dropped() uint64 { return l.dropped.Load() }

// Written counts the lines handed to the output.
func (l *Logger) Written() uint64 { return l.written.Load() }

// WriteErrors counts the failed writes to the output.
func (l *Logger) WriteErrors() uint64 { return l.failed.Load() }

// enqueue formats ln onto the pending batch, or drops it when the batch holds its bound of
// lines or bytes (or the writer is gone), and wakes the writer once the batch is half full.
func (l *Logger) enqueue(ln *line) {
	// Formatted outside the lock, on the stack (a longer line moves to the heap), so that
	// callers on other threads wait for a copy only.
	var scratch [2048]byte
	var b []byte
	if l.opts.Format == JSON {
		b = appendJSON(scratch[:0], ln)
	} else {
		b = appendText(scratch[:0], ln)
	}
	l.mu.Lock()
	if l.closed || l.lines >= l.opts.BufferLines || len(l.pending)+len(b) > l.opts.BufferBytes {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.pending = append(l.pending, b...)
	l.lines++
	full := len(l.pending) >= l.wakeBytes || l.lines >= l.wakeLines
	l.mu.Unlock()
	if full {
		l.kick()
	}
}

// kick wakes the writer unless a wake is already due.
func (l *Logger) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// take hands the writer the pending batch and its line count, leaving the spare batch in its
// place; last marks the final take, after which lines are dropped.
func (l *Logger) take(last bool) ([]byte, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, n := l.pending, l.lines
	l.pending, l.lines, l.spare = l.spare[:0], 0, nil
	if l.pending == nil {
		l.pending = make([]byte, 0, min(batchBytes, l.opts.BufferBytes))
	}
	l.closed = last
	return b, n
}

// giveBack keeps a written batch for the next take, unless a backlog grew it well past a batch.
func (l *Logger) giveBack(b []byte) {
	if cap(b) > 4*batchBytes {
		return
	}
	l.mu.Lock()
	l.spare = b
	l.mu.Unlock()
}

// run is the writer goroutine: it writes the pending batch when it fills up, and at each
// flush interval, flushing then; at Close it writes the last batch and flushes.
func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.wake:
			l.write(l.take(false))
		case <-tick.C:
			l.write(l.take(false))
			l.flush()
		case <-l.stop:
			l.write(l.take(true))
			l.flush()
			return
		}
	}
}

// write hands a batch of n lines to the output.
func (l *Logger) write(b []byte, n int) {
	if n == 0 {
		l.giveBack(b)
		return
	}
	_, err := l.out.Write(b)
	l.giveBack(b)
	if err != nil {
		l.fail(err)
		return
	}
	l.written.Add(uint64(n))
}

func (l *Logger) flush() {
	if l.out.Buffered() == 0 {
		return
	}
	if err := l.out.Flush(); err != nil {
		l.fail(err)
		return
	}
	l.failing = false
}

// fail counts a failed write and logs the first of a run of failures. bufio keeps an error, so
// the writer is reset to try the output afresh with the next line.
func (l *Logger) fail(err error) {
	l.failed.Add(1)
	if !l.failing {
		l.opts.Logger.Warn("access log write failed; lines are lost until it recovers", "err", err)
	}
	l.failing, l.err = true, err
	l.out.Reset(l.dst)
}

// Close writes the lines still queued, flushes the output and stops the writer; later records
// are dropped. It returns the last write error, if any.
func (l *Logger) Close() error {
	l.once.Do(func() {
		l.closing.Store(true)
		close(l.stop)
	})
	<-l.done
	if l.err != nil {
		return fmt.Errorf("access log: %w", l.err)
	}
	return nil
}
