package proxy

import (
	"strings"

	"github.com/meshentry/meshentry/internal/registry"
)

// Update makes snap the snapshot every new request and connection is matched against. What
// already runs is left alone: a request in flight has its upstream and finishes on it, CONNECT
// tunnels and captured pipes stay up whatever the new snapshot says. State is carried over for
// the endpoints snap keeps and dropped for those it does not: pooled idle connections (closed),
// health records and ejections, and the DNS answers of names only the old snapshot used.
// Updates are serialized; a reload calls it from one goroutine anyway.
func (p *Proxy) Update(snap *registry.Snapshot) {
	p.updateMu.Lock()
	defer p.updateMu.Unlock()
	old := p.table.Load()
	// The pool calls the predicate of its last Retain whenever a connection comes back, and
	// that one reads p.live, which is about to change: until the new one is given, it keeps
	// what comes back, and the Retain below closes what is then idle to endpoints gone.
	p.pool.Retain(func(string) bool { return true })
	oldNames := p.live.names // after a whole recount, what went is told by comparing the two
	ch := p.live.advance(snap)
	if !ch.full {
		oldNames = nil
	}
	p.live.keepResolved(p.live.resolvedOf(old), &ch)
	live := p.live.lives
	// The pool is told first: a request still running on the old snapshot then hands its
	// connection to an endpoint that is gone back to a pool that closes it.
	if n := p.pool.Retain(func(key string) bool { return pooledKeyLives(key, live) }); n > 0 {
		p.log.Debug("closed idle upstream connections of endpoints that are gone", "connections", n)
	}
	p.table.Store(p.newTable(snap))
	if ch.full {
		p.counts.retain(p.live.keys, len(p.live.health)+len(p.live.resolved))
	} else {
		p.counts.change(ch.health, live)
	}
	p.drRetain()
	if n := p.health.Retain(live); n > 0 {
		p.log.Debug("dropped health records of endpoints that are gone", "records", n)
	}
	if old == nil || p.cfg.Resolver == nil {
		return
	}
	gone := map[string]struct{}{}
	for _, name := range ch.names {
		if _, ok := p.live.names[name]; !ok {
			gone[name] = struct{}{}
		}
	}
	for name := range oldNames {
		if _, ok := p.live.names[name]; !ok {
			gone[name] = struct{}{}
		}
	}
	if len(gone) == 0 {
		return
	}
	if n := p.cfg.Resolver.Retain(func(name string) bool { _, g := gone[name]; return !g }); n > 0 {
		p.log.Debug("dropped DNS answers of names no service uses any more", "names", n)
	}
}

// pooledKeyLives reports whether a pool key still leads to an endpoint of the new snapshot. Keys
// of destinations the application chose (NONE, ALLOW_ANY) belong to no endpoint and are kept;
// a DNS endpoint's key "name:port|ip:port" lives while its name:port does.
func pooledKeyLives(key string, live func(string) bool) bool {
	if strings.HasPrefix(key, originalKeyPrefix) {
		return true
	}
	ep, _ := splitKey(key)
	return live(ep)
}
