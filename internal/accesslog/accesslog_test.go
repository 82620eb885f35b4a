package accesslog

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/telemetry"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gate is an output whose writes block until it is opened, so a test can hold the writer
// goroutine inside a write while it fills the queue.
type gate struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	entered chan struct{}
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// syncBuffer is an output a test may read while the writer goroutine writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func request(id string) *telemetry.Request {
	return &telemetry.Request{Start: start, UpstreamTime: -1, Protocol: "HTTP/1.1", Method: []byte("GET"),
		Path: []byte("/"), RequestID: []byte(id), Status: 200}
}

// waitBlocked logs one line and waits until the writer goroutine is stuck writing it.
func waitBlocked(t *testing.T, l *Logger, g *gate) {
	t.Helper()
	l.Request(request("first"))
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never wrote")
	}
}

func TestAFullQueueDropsAndCountsInsteadOfBlocking(t *testing.T) {
	t.Parallel()
	var probe line
	probe.fromRequest(request("na"))
	size := len(appendText(nil, &probe))
	tests := []struct {
		name        string
		opts        Options
		sent        int
		wantQueued  int
		wantDropped uint64
	}{
		{name: "lines beyond the line bound are dropped",
			opts: Options{BufferLines: 8}, sent: 100, wantQueued: 8, wantDropped: 92},
		{name: "lines beyond the byte bound are dropped",
			opts: Options{BufferLines: 100, BufferBytes: 3*size + size/2}, sent: 10, wantQueued: 3, wantDropped: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newGate()
			tt.opts.FlushInterval = 10 * time.Millisecond
			l := New(g, tt.opts)
			waitBlocked(t, l, g)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := range tt.sent {
					l.Request(request("n" + string(rune('a'+i%26))))
				}
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("logging blocked behind a stuck output")
			}
			if got := l.Dropped(); got != tt.wantDropped {
				t.Errorf("Dropped() = %d, want %d", got, tt.wantDropped)
			}
			close(g.open)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Count(g.String(), "\n"), 1+tt.wantQueued; got != want {
				t.Errorf("%d lines written, want %d (the one in flight and those queued)", got, want)
			}
			if got := l.Written(); got != uint64(1+tt.wantQueued) {
				t.Errorf("Written() = %d", got)
			}
		})
	}
}

func TestLinesReachTheOutputWithinTheFlushInterval(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	l := New(&out, Options{FlushInterval: 50 * time.Millisecond})
	defer l.Close()
	l.Request(request("soon"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), `"soon"`) {
		if time.Now().After(deadline) {
			t.Fatal("the line was not flushed within 5s with a 50ms flush interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAHalfFullBatchWakesTheWriter: lines that fill half the batch's bound are written without
// waiting for the flush interval, so a busy proxy drops nothing while the writer sleeps.
func TestAHalfFullBatchWakesTheWriter(t *testing.T) {
	t.Parallel()
	l := New(discard{}, Options{FlushInterval: time.Hour, BufferLines: 8})
	defer l.Close()
	for i := range 4 {
		l.Request(request("n" + string(rune('a'+i))))
	}
	for deadline := time.Now().Add(5 * time.Second); l.Written() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 4 lines written within 5s, with an hour's flush interval", l.Written())
		}
	}
	if l.Dropped() != 0 {
		t.Errorf("Dropped() = %d", l.Dropped())
	}
}

func TestCloseFlushesWhatIsQueuedAndDropsWhatComesAfter(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	l := New(&out, Options{FlushInterval: time.Hour, Format: JSON})
	for i := range 50 {
		l.ConnClosed(&telemetry.Conn{Start: start, Received: int64(i)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n"); got != 50 {
		t.Errorf("%d lines after Close, want 50", got)
	}
	l.Request(request("late"))
	if l.Dropped() != 1 || strings.Contains(out.String(), "late") {
		t.Errorf("a record after Close: Dropped() = %d, output has it: %v", l.Dropped(), strings.Contains(out.String(), "late"))
	}
	if err := l.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteFailuresAreCountedAndReturnedByClose(t *testing.T) {
	t.Parallel()
	l := New(failing{}, Options{FlushInterval: 10 * time.Millisecond})
	l.Request(request("lost"))
	deadline := time.Now().Add(5 * time.Second)
	for l.WriteErrors() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no write error counted within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close() = %v, want the write error", err)
	}
}

// TestARecordDoesNotAllocateOnceBuffersAreWarm is not parallel: AllocsPerRun counts the whole
// process. Each run wakes the writer and waits for it to take its line, as a writer that keeps
// up does, so the two batches take turns.
func TestARecordDoesNotAllocateOnceBuffersAreWarm(t *testing.T) {
	r := &telemetry.Request{Start: start, Duration: time.Millisecond, UpstreamTime: time.Millisecond, Protocol: "HTTP/1.1",
		Method: []byte("GET"), Path: []byte("/hello"), Authority: []byte("api.example.com"), UserAgent: []byte("ua"),
		RequestID: []byte("id"), Status: 200, UpstreamHost: "10.0.0.1:80", Service: service, DownstreamRemote: client, DownstreamLocal: local}
	for _, f := range []Format{Text, JSON} {
		l := New(discard{}, Options{Format: f})
		var sent uint64
		record := func() {
			l.Request(r)
			l.kick() // the writer takes the batch now, not at its tick
			sent++
			for deadline := time.Now().Add(5 * time.Second); l.Written() < sent && time.Now().Before(deadline); {
				runtime.Gosched()
			}
		}
		record()
		if n := testing.AllocsPerRun(1000, record); n != 0 {
			t.Errorf("format %d: a record costs %.1f allocations", f, n)
		}
		l.Close()
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkAccessLog measures the cost on the data path of one record: formatting it onto the
// pending batch, and the writer's wake-ups that come with it.
func BenchmarkAccessLog(b *testing.B) {
	r := &telemetry.Request{Start: start, Duration: 3 * time.Millisecond, UpstreamTime: 2 * time.Millisecond, Protocol: "HTTP/1.1",
		Method: []byte("GET"), Path: []byte("/api/v1/items?page=2"), Authority: []byte("api.example.com"),
		UserAgent: []byte("Mozilla/5.0 (X11; Linux x86_64)"), RequestID: []byte("6b1c8f3e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"),
		Status: 200, ResponseBytes: 512, UpstreamHost: "10.1.2.3:80", Service: service, DownstreamRemote: client, DownstreamLocal: local}
	for _, f := range []struct {
		name   string
		format Format
	}{{name: "text", format: Text}, {name: "json", format: JSON}} {
		b.Run(f.name, func(b *testing.B) {
			l := New(discard{}, Options{Format: f.format, BufferLines: 1 << 16, BufferBytes: 64 << 20})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.Request(r)
				}
			})
			b.StopTimer()
			l.Close()
			b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
		})
	}
}
