package httpfwd

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"
)

// arrivalSize is the room a connection keeps of its own for the first bytes of its next request.
// Its four buffers (32 KiB) are the server's, taken when a request arrives and given back once
// it is answered, so that an idle keep-alive connection costs its goroutine and small state, and
// ten thousand idle clients cost tens of megabytes instead of hundreds. A request head larger
// than this is read on into the buffer that is then taken, as a head larger than the buffer is.
const arrivalSize = 1 << 10

// waitForRequest waits until the client's next request begins or the deadline passes; the last
// request left no bytes over. It waits holding no buffer: the first bytes are read into the
// connection's own small array, and the buffers taken then replay them.
func (c *conn) waitForRequest(deadline time.Time) error {
	c.nc.SetReadDeadline(deadline)
	c.releaseBuffers()
	n, err := c.nc.Read(c.arrival[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	c.takeBuffers(n)
	return nil
}

// arrived replays the bytes read while waiting, then reads on from the connection.
type arrived struct {
	b  []byte
	nc net.Conn
	// probe, while set, makes reads take only what the socket holds now (topup.go).
	probe *topUp
}

func (a *arrived) Read(p []byte) (int, error) {
	if len(a.b) > 0 {
		n := copy(p, a.b)
		a.b = a.b[n:]
		return n, nil
	}
	if a.probe != nil {
		return a.probe.read(p)
	}
	return a.nc.Read(p)
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
	c.pending = arrived{b: c.arrival[:n], nc: c.nc}
	c.br.Reset(&c.pending)
	c.bw.Reset(c.nc)
}

// BufferedConns returns how many client connections hold read and write buffers now: those with
// a request in progress. An idle keep-alive connection holds none.
func (s *Server) BufferedConns() int64 { return s.buffered.Load() }
