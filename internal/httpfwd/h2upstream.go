package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// h1Upstream carries HTTP/2 streams to HTTP/1.1 upstreams over the engine's own Pool, one
// stream to a connection at a time. Its idle connections are the Pool's: a socket peeked at
// before reuse, under the Pool's idle bounds and reload retention, with no goroutine and no
// buffer of its own (net/http's Transport held two goroutines and 8 KiB of buffers on each,
// about 27 KiB per pooled connection). Buffers are taken for the exchange only.
type h1Upstream struct {
	s  *Server
	up *upstreamConns
	// max is MaxUpstreamConns: a stream that finds that many connections to its upstream open
	// waits for one to be free, as behind Envoy's max_connections.
	max int

	readers, writers sync.Pool // *bufio.Reader, *bufio.Writer
}

// errStale marks a reused connection that failed before any byte of the response came: the
// upstream had closed it while it sat idle, so a request without a body, or with one held for
// replay (GetBody), is sent again on a fresh one, as net/http's Transport and the engine's own
// path do.
var errStale = errors.New("pooled upstream connection closed before answering")

// maxInterim bounds the 1xx responses skipped before the final one, as net/http does.
const maxInterim = 5

// RoundTrip sends req to the Upstream its context carries (h2cDialKey) and returns the
// response, whose body returns the connection to the Pool once read to its end.
func (t *h1Upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	d, ok := ctx.Value(h2cDialKey{}).(*h2cDial)
	if !ok {
		return nil, errors.New("HTTP/1.1 round trip without an upstream")
	}
	for fresh := false; ; fresh = true {
		uc, err := t.connect(ctx, d, fresh)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, req, uc)
		if errors.Is(err, errStale) && !fresh {
			if req.GetBody != nil {
				// A held body is sent again from its start.
				again := *req
				if again.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
				req = &again
			}
			continue
		}
		if err != nil && ctx.Err() != nil {
			// The stream's timers close the connection; name their cause, not the close.
			err = fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		return resp, err
	}
}

// connect returns an idle pooled connection to d's upstream (unless fresh), or dials one while
// fewer than max are open to it and its cluster's tcp.maxConnections allow one more, else
// waits for one to come back or close: at the cluster's limit as one of its pending requests
// (http1MaxPendingRequests), as the engine's own path waits. It tells the context's trace
// which, as net/http's Transport does: a connection that was not idle when asked for (the
// stream waited) is how the caller sees an overflow of max.
func (t *h1Upstream) connect(ctx context.Context, d *h2cDial, fresh bool) (*upConn, error) {
	key, lim := d.up.Key, d.up.Limits
	waited, pending := false, false
	defer func() {
		if pending {
			lim.pending.Add(-1)
		}
	}()
	var wake, clusterWake chan struct{}
	for {
		if !fresh {
			if uc := t.s.pool.get(key, time.Now()); uc != nil {
				gotConn(ctx, uc, !waited)
				return uc, nil
			}
		}
		switch t.takeSlot(key, lim) {
		case slotTaken:
			return t.dial(ctx, d)
		case clusterFull:
			if t.s.pool.closeIdleOf(lim) {
				continue // an idle connection to another endpoint of the cluster held the slot
			}
			if !pending {
				pending = true
				if lim.pending.Add(1) > lim.Settings.MaxPending {
					lim.overflows.Add(1)
					return nil, fmt.Errorf("%w: %d connections open to the cluster and %d requests pending",
						ErrOverflow, lim.Settings.MaxConnections, lim.Settings.MaxPending)
				}
			}
			if clusterWake == nil {
				clusterWake = lim.waitChan() // then look once more, as below
				continue
			}
		default:
			if wake == nil {
				// At the cap: take the wake channel, then look once more, so that a
				// connection that came back or closed in between is not missed.
				wake = t.s.pool.wakeChan(key)
				continue
			}
		}
		waited = true
		select {
		case <-wake:
			wake = nil
		case <-clusterWake:
			clusterWake = nil
		case <-ctx.Done():
			if pending && context.Cause(ctx) == errStreamIdle {
				lim.overflows.Add(1)
				return nil, fmt.Errorf("%w: no connection to the cluster free within %v", ErrOverflow, t.s.lim.StreamIdleTimeout)
			}
			return nil, fmt.Errorf("waiting for a connection to %s: %w", key, context.Cause(ctx))
		}
	}
}

// What takeSlot found.
const (
	slotTaken    = iota // a connection of key counted, and its cluster's slot claimed
	upstreamFull        // max connections to key are open
	clusterFull         // the cluster's tcp.maxConnections are open
)

// takeSlot counts a new connection to key under max and claims its slot under lim (when set).
func (t *h1Upstream) takeSlot(key string, lim *ClusterLimits) int {
	if !t.up.take(key, t.max) {
		return upstreamFull
	}
	if lim != nil && !lim.takeConn() {
		t.up.add(key, -1)
		return clusterFull
	}
	return slotTaken
}

// dial opens the connection whose slots takeSlot took; closing it frees them and wakes a
// stream waiting for one.
func (t *h1Upstream) dial(ctx context.Context, d *h2cDial) (*upConn, error) {
	key, lim := d.up.Key, d.up.Limits
	raw, err := dialH2C(ctx, "tcp", key)
	if err != nil {
		t.up.add(key, -1)
		if lim != nil {
			lim.ReleaseConn()
		}
		return nil, err
	}
	nc := raw
	if lim != nil {
		if err := lim.SetKeepAlive(raw); err != nil {
			t.s.logFailure(slog.LevelDebug, "upstream keepalive not set", failureInfo{upstream: key, err: err})
		}
		nc = LimitConn(raw, lim)
	}
	uc := newUpConn(key, raw) // peeks at the socket itself, below the counts
	uc.nc = &countedConn{Conn: nc, closed: func() { t.up.add(key, -1); t.s.pool.wake(key) }}
	uc.lim = lim
	gotConn(ctx, uc, false)
	return uc, nil
}

func gotConn(ctx context.Context, uc *upConn, wasIdle bool) {
	if tr := httptrace.ContextClientTrace(ctx); tr != nil && tr.GotConn != nil {
		tr.GotConn(httptrace.GotConnInfo{Conn: uc.nc, Reused: uc.reused, WasIdle: wasIdle && uc.reused})
	}
}

// exchange writes req on uc and reads the response head. A request body is written on its own
// goroutine while the response is read, as an upstream may answer before it read the body.
func (t *h1Upstream) exchange(ctx context.Context, req *http.Request, uc *upConn) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { uc.nc.Close() })
	out, body := req, (*sentBody)(nil)
	if req.Body != nil && req.Body != http.NoBody {
		body = &sentBody{r: req.Body}
		cp := *req
		cp.Body = body
		out = &cp
	}
	sock := uc.stream()
	bw := t.writer(sock)
	wrote := make(chan error, 1)
	write := func() {
		err := writeRequest(out, bw)
		t.writers.Put(bw)
		if err != nil {
			uc.nc.Close() // a request cut short: its response, if any, cannot be trusted
		}
		wrote <- err
	}
	if body == nil {
		write()
	} else {
		go write()
	}
	head := &headLimit{r: sock, left: t.s.lim.MaxHeaderBytes}
	br := t.reader(head)
	resp, err := readFinal(br, req)
	if err != nil {
		stop()
		uc.nc.Close()
		t.readers.Put(br)
		return nil, t.headFailed(uc, head, req, body, wrote, err)
	}
	head.left = -1 // the body is not bounded by the head's limit
	resp.Body = &h1Body{t: t, uc: uc, br: br, body: resp.Body, stop: stop, wrote: wrote, sent: body,
		reusable: !resp.Close && !req.Close}
	return resp, nil
}

// headFailed says why no response head came on uc, whose connection is closed: errStale when
// a reused connection gave not a byte and the request can be sent again whole (no body, a
// held one, or one that ended with nothing in it), the failed write when there was one.
func (t *h1Upstream) headFailed(uc *upConn, head *headLimit, req *http.Request, body *sentBody, wrote chan error, err error) error {
	resendable := body == nil || req.GetBody != nil || body.endedEmpty()
	var werr error
	if body == nil || body.endedEmpty() {
		werr = <-wrote // written already, or about to fail on the closed connection
	} else {
		select { // the write may be waiting on the client's body; do not wait for it
		case werr = <-wrote:
		default:
		}
	}
	if werr != nil {
		err = werr
	}
	switch {
	case uc.reused && head.read == 0 && resendable:
		return fmt.Errorf("%w: %w", errStale, err)
	case head.over:
		return fmt.Errorf("%w: response head over %d bytes", ErrBadResponse, t.s.lim.MaxHeaderBytes)
	}
	return err
}

// sentBody is a request body as it is written upstream: it notes whether any of it was read,
// and whether it ended, so that a request whose body ended empty can be sent again.
type sentBody struct {
	r     io.ReadCloser
	n     atomic.Int64
	ended atomic.Bool
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	if err == io.EOF {
		b.ended.Store(true)
	}
	return n, err
}

func (b *sentBody) Close() error { return b.r.Close() }

func (b *sentBody) endedEmpty() bool { return b.ended.Load() && b.n.Load() == 0 }

// writeRequest writes req's head and body to bw and flushes it.
func writeRequest(req *http.Request, bw *bufio.Writer) error {
	if err := req.Write(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// readFinal reads responses until a final one (or a 101), skipping interim 1xx ones.
func readFinal(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for range maxInterim {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
	return nil, fmt.Errorf("%w: more than %d interim responses", ErrBadResponse, maxInterim)
}

func (t *h1Upstream) writer(w io.Writer) *bufio.Writer {
	if bw, ok := t.writers.Get().(*bufio.Writer); ok {
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, 4<<10)
}

func (t *h1Upstream) reader(r io.Reader) *bufio.Reader {
	if br, ok := t.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, 4<<10)
}

// headLimit bounds the bytes read for a response head (left < 0: unbounded) and counts them.
type headLimit struct {
	r    io.Reader
	left int
	read int64
	over bool
}

func (h *headLimit) Read(p []byte) (int, error) {
	if h.left == 0 {
		h.over = true
		return 0, errors.New("response head too large")
	}
	if h.left > 0 && len(p) > h.left {
		p = p[:h.left]
	}
	n, err := h.r.Read(p)
	h.read += int64(n)
	if h.left > 0 {
		h.left -= n
	}
	return n, err
}

// h1Body is a response body that gives its connection back to the Pool when read to its end
// with the request written whole, and closes it otherwise.
type h1Body struct {
	t        *h1Upstream
	uc       *upConn
	br       *bufio.Reader
	body     io.ReadCloser
	stop     func() bool
	wrote    chan error // the request's write
	sent     *sentBody  // the request's body, nil when it had none
	reusable bool
	done     bool
}

// writeSettle bounds the wait, at the end of a response, for the write of a request whose
// body has ended: only its last bytes are left to flush, unless the upstream stopped reading.
const writeSettle = 100 * time.Millisecond

// written reports whether the request went out whole; false when it is still being written,
// since the upstream answered before it took the body.
func (b *h1Body) written() bool {
	select {
	case err := <-b.wrote:
		return err == nil
	default:
	}
	if b.sent == nil || !b.sent.ended.Load() {
		return false
	}
	timer := time.NewTimer(writeSettle)
	defer timer.Stop()
	select {
	case err := <-b.wrote:
		return err == nil
	case <-timer.C:
		return false
	}
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish ends the exchange: the connection goes back to the Pool when the response was read to
// its end, the request body was written whole, and no timer closed it; else it is closed.
func (b *h1Body) finish(complete bool) {
	b.done = true
	reuse := complete && b.reusable && b.written()
	if !b.stop() {
		reuse = false // a timer closed the connection
	}
	b.t.readers.Put(b.br)
	if !reuse {
		// A body write still waiting on the client ends when the HTTP/2 server closes the
		// stream's body, as the handler returns.
		b.uc.nc.Close()
		return
	}
	b.uc.served++
	b.t.s.pool.put(b.uc, time.Now()) // wakes a stream waiting at the cap
}

// take counts a new connection to addr when fewer than max are open (max 0: no bound).
func (u *upstreamConns) take(addr string, max int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if max > 0 && u.open[addr] >= max {
		return false
	}
	if u.open == nil {
		u.open = make(map[string]int)
	}
	u.open[addr]++
	return true
}

// wakeChan returns the channel closed when the next connection of key comes back idle or
// closes; look again after taking it, so that no such event is missed.
func (p *Pool) wakeChan(key string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waits == nil {
		p.waits = make(map[string]chan struct{})
	}
	ch, ok := p.waits[key]
	if !ok {
		ch = make(chan struct{})
		p.waits[key] = ch
	}
	return ch
}

// wake wakes the streams waiting for a connection of key.
func (p *Pool) wake(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wakeLocked(key)
}

func (p *Pool) wakeLocked(key string) {
	if ch, ok := p.waits[key]; ok {
		close(ch)
		delete(p.waits, key)
	}
}
