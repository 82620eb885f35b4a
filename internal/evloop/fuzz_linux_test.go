package evloop

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// relayPlan is what the upstream of one FuzzRelay input does.
type relayPlan struct {
	down        []byte
	chunk       int
	waitsForEOF bool // reads the client's bytes to the EOF before it writes its own
}

// FuzzRelay drives both directions with writes of random sizes and both orders of half-close
// through a Group with small buffers: what comes out must be what went in, byte for byte.
func FuzzRelay(f *testing.F) {
	f.Add([]byte("hello"), []byte("world"), uint16(1), uint16(3), false)
	f.Add([]byte{}, []byte("only the upstream speaks"), uint16(7), uint16(0), true)
	f.Add(bytes.Repeat([]byte("up"), 50000), []byte{}, uint16(999), uint16(1), false)
	f.Add(bytes.Repeat([]byte{0, 1, 2}, 30000), bytes.Repeat([]byte{9}, 70000), uint16(4095), uint16(100), true)
	f.Add([]byte{}, []byte{}, uint16(0), uint16(0), false)
	plans := make(chan relayPlan, 1)
	upstreamGot := make(chan []byte, 1)
	up := serve(f, func(c *net.TCPConn) {
		p := <-plans
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var got []byte
		if p.waitsForEOF {
			got, _ = io.ReadAll(c)
			writeChunks(c, p.down, p.chunk)
			c.CloseWrite()
		} else {
			writeChunks(c, p.down, p.chunk)
			c.CloseWrite()
			got, _ = io.ReadAll(c)
		}
		upstreamGot <- got
	})
	g := newGroup(f, Options{BufferSize: 1024})
	done := make(results, 1)
	addr := listen(f, g, done.routeTo(up.addr))
	f.Fuzz(func(t *testing.T, upBytes, downBytes []byte, upChunk, downChunk uint16, waitsForEOF bool) {
		plans <- relayPlan{down: downBytes, chunk: int(downChunk)%4096 + 1, waitsForEOF: waitsForEOF}
		c := dial(t, addr)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var clientGot []byte
		var wg sync.WaitGroup
		var readErr error
		wg.Go(func() { clientGot, readErr = io.ReadAll(c) })
		writeChunks(c, upBytes, int(upChunk)%4096+1)
		c.CloseWrite()
		wg.Wait()
		c.Close()
		if got := <-upstreamGot; !bytes.Equal(got, upBytes) {
			t.Errorf("upstream got %d bytes, not the %d the client sent", len(got), len(upBytes))
		}
		if !bytes.Equal(clientGot, downBytes) || readErr != nil {
			t.Errorf("client got %d bytes (%v), not the %d the upstream sent", len(clientGot), readErr, len(downBytes))
		}
		res := done.next(t)
		if res.Up != int64(len(upBytes)) || res.Down != int64(len(downBytes)) || res.Err != nil {
			t.Errorf("Result %+v, want up %d down %d", res, len(upBytes), len(downBytes))
		}
	})
}

// writeChunks writes b in writes of chunk bytes.
func writeChunks(c net.Conn, b []byte, chunk int) {
	for len(b) > 0 {
		n := min(chunk, len(b))
		if _, err := c.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
	}
}
