package httpfwd

// Retain closes the idle connections whose Key keep rejects and makes the pool close, rather
// than keep, any connection handed back later under such a key, until the next Retain: a
// configuration reload calls it with the upstreams that remain, so requests in flight to an
// endpoint that is gone finish, and their connections then go. It returns how many idle
// connections it closed. keep must be safe to call with the pool's lock held (no pool calls).
//
// Connections to h2c upstreams are left alone: they live in one shared http2 Transport, whose
// idle ones cannot be closed by address; its own idle timeout closes them.
func (p *Pool) Retain(keep func(key string) bool) int {
	var gone []*upConn
	p.mu.Lock()
	p.keep = keep
	p.retained.Store(&retention{})
	for key, list := range p.idle {
		if keep(key) {
			continue
		}
		gone = append(gone, list...)
		delete(p.idle, key)
	}
	p.count -= len(gone)
	p.mu.Unlock()
	for _, uc := range gone {
		uc.nc.Close()
	}
	return len(gone)
}

// retention is one Retain, told apart from the others by its address: the loop pools compare
// the one they last applied with the latest (a non-zero size, so that each is a new address).
type retention struct{ _ byte }

// keeps reports whether the last Retain keeps key, under the lock its filter is called with
// (Proxy.Update changes what it reads only while a keep-all filter is in place).
func (p *Pool) keeps(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.retiredLocked(key)
}

// retiredLocked reports whether the last Retain rejected key; p.mu must be held.
func (p *Pool) retiredLocked(key string) bool {
	return p.keep != nil && !p.keep(key)
}
