package httpfwd

import "bufio"

// loopWork is the bulk of a loop client's state: its conn (heads, records, the writers and
// their buffers, some 25 KiB), its output buffers and its decoder of chunked responses. A
// keep-alive client that waits for its next request with nothing in flight gives it back to
// its loop (park) and takes one again when it is next woken (unpark), so that an idle client
// holds only its loopConn, as the engine's parked connections hold no buffers. A loop runs
// one client at a time, so it needs as many as it has exchanges in flight, which its free
// list keeps.
type loopWork struct {
	c          *conn
	out, upOut outBuf
	body       []byte
	chunks     *loopChunks
}

// newLoopWork makes the state of a client the loop serves: the engine's conn, whose
// writers append to lc's output buffers.
func (ls *LoopServer) newLoopWork(lc *loopConn) *conn {
	c := &conn{s: ls.s, work: &work{}}
	c.req.maxFields, c.resp.maxFields = ls.s.lim.MaxHeaders, ls.s.lim.MaxHeaders
	c.bw = bufio.NewWriterSize(&lc.out, writeSize)
	c.ubw = bufio.NewWriterSize(&lc.upOut, writeSize)
	return c
}

// park gives lc's bulk back to its loop when lc is a keep-alive client waiting for a head
// with nothing pending; anything else keeps it.
func (lc *loopConn) park() {
	if lc.c == nil || lc.cl == nil || lc.st != stHead || !lc.kept || lc.partial || lc.again ||
		lc.u != nil || lc.in != 0 || lc.out.pending() || lc.upOut.pending() {
		return
	}
	p := &lc.ls.pools[lc.cl.LoopIndex()]
	bump(&lc.ls.stats.parks)
	lc.c.work.reset()
	if len(p.works) < maxFreeLoopConns {
		lc.out.reset()
		lc.upOut.reset()
		p.works = append(p.works, loopWork{c: lc.c, out: lc.out, upOut: lc.upOut, body: lc.body, chunks: lc.chunks})
	}
	lc.c, lc.out, lc.upOut, lc.body, lc.chunks = nil, outBuf{}, outBuf{}, nil, nil
}

// unpark gives a parked lc a bulk again, its loop's most recently parked one or a new one.
func (lc *loopConn) unpark() {
	if lc.c != nil {
		return
	}
	p := &lc.ls.pools[lc.cl.LoopIndex()]
	n := len(p.works)
	if n == 0 {
		lc.c = lc.ls.newLoopWork(lc)
		return
	}
	w := p.works[n-1]
	p.works[n-1] = loopWork{}
	p.works = p.works[:n-1]
	lc.c, lc.out, lc.upOut, lc.body, lc.chunks = w.c, w.out, w.upOut, w.body, w.chunks
	lc.c.bw.Reset(&lc.out)
	lc.c.ubw.Reset(&lc.upOut)
}
