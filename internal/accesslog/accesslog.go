// Package accesslog is a telemetry.Sink that writes one line per finished request and per
// closed piped connection, in Istio's default text format or its JSON form. Lines are formatted
// on the caller into pooled buffers and handed to one writer goroutine through a bounded queue:
// when the queue is full the line is dropped and counted, so a slow disk or a blocked stdout
// never holds up traffic.
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
type Logger struct {
	opts    Options
	out     *bufio.Writer
	dst     io.Writer
	queue   chan *[]byte
	free    chan *[]byte // buffers to reuse; a channel, not a sync.Pool, which a GC empties
	queued  atomic.Int64
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

// New starts a Logger writing to w; Close stops it. w is written from one goroutine only.
func New(w io.Writer, o Options) *Logger {
	o = o.withDefaults()
	l := &Logger{
		opts: o, dst: w, out: bufio.NewWriterSize(w, 64<<10),
		queue: make(chan *[]byte, o.BufferLines),
		// Room for every queued buffer and those being formatted or written.
		free: make(chan *[]byte, o.BufferLines+64),
		stop: make(chan struct{}), done: make(chan struct{}),
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

// enqueue formats ln into a pooled buffer and queues it, or drops it when the queue is full.
func (l *Logger) enqueue(ln *line) {
	var bp *[]byte
	select {
	case bp = <-l.free:
	default:
		b := make([]byte, 0, 512)
		bp = &b
	}
	b := (*bp)[:0]
	if l.opts.Format == JSON {
		b = appendJSON(b, ln)
	} else {
		b = appendText(b, ln)
	}
	*bp = b
	n := int64(len(b))
	if l.queued.Add(n) > int64(l.opts.BufferBytes) {
		l.queued.Add(-n)
		l.drop(bp)
		return
	}
	select {
	case l.queue <- bp:
	default:
		l.queued.Add(-n)
		l.drop(bp)
	}
}

func (l *Logger) drop(bp *[]byte) {
	l.dropped.Add(1)
	l.put(bp)
}

// put keeps a buffer for reuse unless one unusually long line grew it, or enough are kept.
func (l *Logger) put(bp *[]byte) {
	if cap(*bp) > 16<<10 {
		return
	}
	select {
	case l.free <- bp:
	default:
	}
}

// run is the writer goroutine: it copies queued lines to the output and flushes it once the
// flush interval passed, and at Close after the queue is drained.
func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case bp := <-l.queue:
			l.write(bp)
		case <-tick.C:
			l.flush()
		case <-l.stop:
			for {
				select {
				case bp := <-l.queue:
					l.write(bp)
				default:
					l.flush()
					return
				}
			}
		}
	}
}

func (l *Logger) write(bp *[]byte) {
	n := len(*bp)
	_, err := l.out.Write(*bp)
	l.queued.Add(-int64(n))
	l.put(bp)
	if err != nil {
		l.fail(err)
		return
	}
	l.written.Add(1)
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
