package httpfwd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/meshentry/meshentry/internal/rawio"
)

// arrivalSize is the room a connection keeps of its own for the first bytes of its next request.
// Its four buffers (32 KiB) are the server's, taken when a request arrives and given back once
// it is answered, so that an idle keep-alive connection costs its goroutine and small state, and
// ten thousand idle clients cost tens of megabytes instead of hundreds. A request head larger
// than this is read on into the buffer that is then taken, as a head larger than the buffer is.
const arrivalSize = 1 << 10

// defaultIdleRelease is Server.IdleRelease's default: long past the gap between the requests of a
// busy keep-alive client, which so never parks, and short beside the idle timeout.
const defaultIdleRelease = time.Second

// errParked says a keep-alive wait reached Server.IdleRelease: the connection parks.
var errParked = errors.New("connection parked")

// waitForRequest waits until the client's next request begins, or for at most wait from now; the
// last request left no bytes over. It waits holding no buffer: the first bytes are read into the
// connection's own small array, and the buffers taken then replay them. A keep-alive wait that
// lasts IdleRelease returns errParked instead, with c.idleUntil set to when the wait ends.
func (c *conn) waitForRequest(now time.Time, wait time.Duration) error {
	c.releaseBuffers()
	if c.woke {
		c.woke = false
		c.takeBuffers(1) // resume read it into arrival
		return nil
	}
	deadline, until := now.Add(wait), now.Add(wait)
	if rel := c.s.idleRelease(); c.kept && rel > 0 && rel < wait {
		until = now.Add(rel)
	}
	c.nc.SetReadDeadline(until)
	n, err := c.cio.Read(c.arrival[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		if until.Before(deadline) && isTimeout(err) && !c.s.shutting.Load() {
			c.idleUntil = deadline
			return errParked
		}
		return err
	}
	c.takeBuffers(n)
	return nil
}

func (s *Server) idleRelease() time.Duration {
	switch {
	case s.IdleRelease != 0:
		return s.IdleRelease
	case s.lim.IdleRelease != 0:
		return s.lim.IdleRelease
	}
	return defaultIdleRelease
}

// park gives back what a connection needs only while it serves; it holds its socket, its small
// state and no goroutine of the serving kind.
func (c *conn) park() {
	c.work.reset()
	c.s.freeWork.put(c.work)
	c.work = nil
	c.s.stats.parked.Add(1)
}

// resume serves a parked detached connection on from a fresh goroutine.
func (c *conn) resume(ctx context.Context) {
	if !c.awaitWake() {
		c.finish(true)
		return
	}
	c.run(ctx)
}

// awaitWake waits for the next request of a parked connection, reading its first byte into
// c.first, and reports whether it began: false when the idle timeout passed, a drain closed the
// connection or the client did. It then takes per-request state back.
func (c *conn) awaitWake() bool {
	c.nc.SetReadDeadline(c.idleUntil)
	var n int
	var err error
	// A drain marks the server before it expires the deadlines of idle connections: seen here
	// unmarked, the drain's deadline comes after the one just set.
	if !c.s.shutting.Load() {
		n, err = c.nc.Read(c.first[:])
	}
	if n == 0 {
		c.idle.Store(false)
		if isTimeout(err) && !c.s.shutting.Load() {
			c.s.stats.idle.Add(1)
		}
		return false
	}
	c.takeWork()
	c.arrival[0] = c.first[0]
	c.woke = true
	return true
}

// maxFreeWork bounds the per-request states kept by the server for connections that wake up
// (~1 MiB). A sync.Pool would keep every state of a peak, thousands of requests at once, alive
// through the next garbage collection; beyond this bound they are garbage at once.
const maxFreeWork = 256

// freeWork holds per-request states no connection is using.
type freeWork struct {
	mu    sync.Mutex
	works []*work
}

func (f *freeWork) get() *work {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.works)
	if n == 0 {
		return nil
	}
	w := f.works[n-1]
	f.works[n-1] = nil
	f.works = f.works[:n-1]
	return w
}

func (f *freeWork) put(w *work) {
	f.mu.Lock()
	if len(f.works) < maxFreeWork {
		f.works = append(f.works, w)
	}
	f.mu.Unlock()
}

// takeWork gives the connection per-request state, when it has none, for its client.
func (c *conn) takeWork() {
	if c.work == nil {
		w := c.s.freeWork.get()
		if w == nil {
			w = &work{}
			w.up.bufs = &c.s.bufPool
			w.down.bufs = &c.s.bufPool
			w.req.maxFields = c.s.lim.MaxHeaders
			w.resp.maxFields = c.s.lim.MaxHeaders
		}
		c.work = w
	}
	c.up.drained = &c.bodyRead
	c.req.RemoteAddr = c.nc.RemoteAddr()
	c.req.LocalAddr = c.nc.LocalAddr()
	c.req.Host = ""
}

// arrived replays the bytes read while waiting, then reads on from the connection.
type arrived struct {
	b    []byte
	sock *rawio.Socket
	// now, while set, makes reads take only what the socket holds now (topup.go).
	now bool
}

func (a *arrived) Read(p []byte) (int, error) {
	if len(a.b) > 0 {
		n := copy(p, a.b)
		a.b = a.b[n:]
		return n, nil
	}
	if a.now {
		return a.sock.ReadNow(p)
	}
	return a.sock.Read(p)
}

// bufSet is the four buffers a connection uses while it serves a request.
type bufSet struct {
	br, ubr *bufio.Reader
	bw, ubw *bufio.Writer
}

// maxFreeSets bounds the buffer sets the server keeps for the next requests (8 MiB): enough for
// a burst on a busy proxy, given back to the garbage collector beyond it.
const maxFreeSets = 256

// freeSets holds buffer sets no connection is using. It is a plain list, not a sync.Pool: a
// request that finds one allocates nothing, every time (a sync.Pool may drop what it holds).
type freeSets struct {
	mu   sync.Mutex
	sets []*bufSet
}

func (f *freeSets) get() *bufSet {
	f.mu.Lock()
	if n := len(f.sets); n > 0 {
		b := f.sets[n-1]
		f.sets[n-1] = nil
		f.sets = f.sets[:n-1]
		f.mu.Unlock()
		return b
	}
	f.mu.Unlock()
	return &bufSet{
		br: bufio.NewReaderSize(nil, readSize), ubr: bufio.NewReaderSize(nil, readSize),
		bw: bufio.NewWriterSize(nil, writeSize), ubw: bufio.NewWriterSize(nil, writeSize),
	}
}

func (f *freeSets) put(b *bufSet) {
	b.br.Reset(nil)
	b.bw.Reset(nil)
	b.ubr.Reset(nil)
	b.ubw.Reset(nil)
	f.mu.Lock()
	if len(f.sets) < maxFreeSets {
		f.sets = append(f.sets, b)
	}
	f.mu.Unlock()
}

// releaseBuffers gives the connection's buffers back to the server, when it holds them.
func (c *conn) releaseBuffers() {
	if c.bufs == nil {
		return
	}
	c.s.free.put(c.bufs)
	c.bufs, c.br, c.bw, c.ubr, c.ubw = nil, nil, nil, nil, nil
	c.s.buffered.Add(-1)
}

// takeBuffers gives the connection buffers, the client's reader replaying the n bytes that
// arrived in c.arrival.
func (c *conn) takeBuffers(n int) {
	c.bufs = c.s.free.get()
	c.br, c.bw, c.ubr, c.ubw = c.bufs.br, c.bufs.bw, c.bufs.ubr, c.bufs.ubw
	c.s.buffered.Add(1)
	c.pending = arrived{b: c.arrival[:n], sock: &c.cio}
	c.br.Reset(&c.pending)
	c.bw.Reset(&c.cio)
}

// BufferedConns returns how many client connections hold read and write buffers now: those with
// a request in progress. An idle keep-alive connection holds none.
func (s *Server) BufferedConns() int64 { return s.buffered.Load() }
