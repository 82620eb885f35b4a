package httpfwd

import (
	"golang.org/x/sys/unix"

	"github.com/meshentry/meshentry/internal/evloop"
)

// The loop's upstream connections. An idle one stays registered in its loop's epoll, so that
// an upstream that closes it, resets it or sends on it is learnt from an edge, at once, and
// the connection leaves the pool: a request never goes out on a connection on which bytes
// arrived while it was idle (a late second response, a 408 before a close), which would be
// read as that request's answer. The Go engine's Pool peeks at a connection before each reuse
// for the same guarantee; here the event costs nothing per request.

// loopUp is one upstream connection of a loop.
type loopUp struct {
	ls         *LoopServer
	cn         *evloop.Conn
	key        string
	lc         *loopConn // the request using it; nil while idle
	connecting bool
	idle       bool
	reused     bool  // carried a response before, so the upstream may have closed it since
	served     int64 // responses it carried
	// checked is the Pool's Retain this connection's key was last found kept under (or the
	// one in force when it was dialled): put asks again only once another Retain came.
	checked *retention
}

func (ls *LoopServer) newUp(key string) *loopUp {
	return &loopUp{ls: ls, key: key, checked: ls.s.pool.retained.Load()}
}

// Ready hands an edge to the request using u; an edge of an idle connection ends it.
func (u *loopUp) Ready(cn *evloop.Conn, ev evloop.Events) {
	switch {
	case u.idle:
		if ev&evloop.Hangup == 0 && (ev&evloop.Readable == 0 || u.quiet()) {
			// An edge queued before the response's last bytes were read: nothing is there.
			return
		}
		bump(&u.ls.stats.poolIdleClosed)
		u.ls.pools[cn.LoopIndex()].remove(u)
		u.close()
	case u.lc == nil:
	case u.connecting:
		if ev&(evloop.Writable|evloop.Hangup) != 0 {
			lc := u.lc
			lc.connected(u, false)
			lc.drive()
		}
	default:
		lc := u.lc
		lc.upstreamReady(ev)
		lc.drive()
	}
}

// Expired is the connect timeout of a connecting u, or the pool's idle timeout of an idle one.
func (u *loopUp) Expired(cn *evloop.Conn) {
	switch {
	case u.idle:
		bump(&u.ls.stats.poolIdleTimeout)
		u.ls.pools[cn.LoopIndex()].remove(u)
		u.close()
	case u.connecting && u.lc != nil:
		lc := u.lc
		lc.connected(u, true)
		lc.drive()
	}
}

// Drain closes an idle u; one in use ends with its request, or with its client when the Group
// stops.
func (u *loopUp) Drain(cn *evloop.Conn, now bool) {
	switch {
	case u.idle:
		u.ls.pools[cn.LoopIndex()].remove(u)
		u.close()
	case now && u.lc != nil:
		u.lc.abort()
	}
}

// quiet reports whether nothing is there to read on u (a peek says EAGAIN).
func (u *loopUp) quiet() bool {
	var b [1]byte
	_, e := u.cn.Peek(b[:])
	return e == unix.EAGAIN
}

// close closes u's socket.
func (u *loopUp) close() {
	if u.cn != nil {
		u.cn.Close()
		u.cn = nil
	}
	u.lc, u.idle = nil, false
}

// loopPool is one loop's idle upstream connections by key, the most recently used last.
type loopPool struct {
	// swept is the Pool's Retain whose filter last went over idle (see retire).
	swept *retention
	idle  map[string][]*loopUp
	free  []*loopConn // client states to reuse
	works []loopWork  // the bulk parked keep-alive clients gave back (park)
}

// get takes the most recently used idle connection of key, or nil.
func (p *loopPool) get(ls *LoopServer, key string) *loopUp {
	p.retire(ls)
	list := p.idle[key]
	if len(list) == 0 {
		return nil
	}
	u := list[len(list)-1]
	list[len(list)-1] = nil
	p.idle[key] = list[:len(list)-1]
	u.idle, u.reused = false, true
	u.cn.SetDeadline(0)
	return u
}

// put keeps u idle under the Pool's bounds: MaxIdlePerKey per key, IdleTimeout each.
func (p *loopPool) put(ls *LoopServer, u *loopUp) {
	p.retire(ls)
	if r := ls.s.pool.retained.Load(); u.checked != r {
		if !ls.s.pool.keeps(u.key) {
			bump(&ls.stats.poolRetired)
			u.close() // its endpoint left the config while it carried a request
			return
		}
		u.checked = r
	}
	list := p.idle[u.key]
	if len(list) >= ls.s.pool.maxIdle() {
		bump(&ls.stats.poolFull)
		u.close()
		return
	}
	u.lc, u.idle = nil, true
	u.cn.SetDeadline(ls.s.pool.idleTimeout())
	p.idle[u.key] = append(list, u)
}

// remove takes an idle u out of the pool.
func (p *loopPool) remove(u *loopUp) {
	list := p.idle[u.key]
	for i, x := range list {
		if x == u {
			copy(list[i:], list[i+1:])
			list[len(list)-1] = nil
			p.idle[u.key] = list[:len(list)-1]
			break
		}
	}
	u.idle = false
}

// retire closes the idle connections whose key the Pool's latest Retain rejects (a reload took
// their endpoint away), once per Retain: a load and a compare per request otherwise. A loop
// that serves nothing keeps its idle ones until they time out (the Pool's IdleTimeout).
func (p *loopPool) retire(ls *LoopServer) {
	r := ls.s.pool.retained.Load()
	if r == p.swept {
		return
	}
	p.swept = r
	for key, list := range p.idle {
		if ls.s.pool.keeps(key) {
			for _, u := range list {
				u.checked = r
			}
			continue
		}
		for _, u := range list {
			bump(&ls.stats.poolRetired)
			u.close()
		}
		delete(p.idle, key)
	}
}
