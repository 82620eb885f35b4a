package proxy

import (
	"sync"

	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
)

// liveState is what Update's carry-over needs to know of the serving snapshot: how many of its
// endpoints have each health key, how many of its services make the proxy resolve each name and
// have each cluster. Kept up to date from each snapshot's changes (registry ChangesFrom), so an
// Update after one file of many changed costs what changed, not the size of the config. Only
// Update reads or writes it, under updateMu.
type liveState struct {
	snap     *registry.Snapshot
	health   map[string]int
	names    map[string]int
	clusters map[string]int
	// resolved are the addresses of DNS endpoints the last Update kept health records for.
	resolved map[string]struct{}
}

// liveChange is what one Update moved: the keys whose count reached or left zero (a key may
// do both in one Update; the state's final counts say whether it lives).
type liveChange struct {
	// full says the state was counted anew, so the lists below are empty and every set is to
	// be kept to the state's keys whole.
	full                    bool
	health, names, clusters []string
}

// advance moves l to snap, incrementally when snap was built from l's snapshot.
func (l *liveState) advance(snap *registry.Snapshot) liveChange {
	added, removed, ok := snap.ChangesFrom(l.snap)
	if !ok || l.health == nil {
		*l = countAll(snap, l.resolved)
		return liveChange{full: true}
	}
	var ch liveChange
	for _, svc := range removed {
		l.count(svc, -1, &ch)
	}
	for _, svc := range added {
		l.count(svc, 1, &ch)
	}
	l.snap = snap
	return ch
}

// countAll counts snap's keys anew: the three maps, sized first, are filled on their own
// goroutines, since at 100,000 services this is most of a proxy's startup and nothing else runs
// beside it. The counts are those count makes, service by service; as they only go up here, each
// is one map operation (m[k]++) where bump, which may drop a key, takes two.
func countAll(snap *registry.Snapshot, resolved map[string]struct{}) liveState {
	ports, eps := 0, 0
	for _, svc := range snap.Services {
		ports += len(svc.Ports)
		for i := range svc.Ports {
			eps += len(svc.Ports[i].Endpoints)
		}
	}
	l := liveState{snap: snap, resolved: resolved}
	var wg sync.WaitGroup
	wg.Go(func() {
		l.health = make(map[string]int, eps)
		for _, svc := range snap.Services {
			for i := range svc.Ports {
				for j := range svc.Ports[i].Endpoints {
					l.health[healthKey(&svc.Ports[i].Endpoints[j])]++
				}
			}
		}
	})
	wg.Go(func() {
		l.clusters = make(map[string]int, ports)
		for _, svc := range snap.Services {
			for i := range svc.Ports {
				l.clusters[svc.Ports[i].Cluster]++
			}
		}
	})
	l.names = make(map[string]int, len(snap.Services))
	up := func(k string) { l.names[k]++ }
	for _, svc := range snap.Services {
		namesOf(svc, up)
	}
	wg.Wait()
	return l
}

// countNames adds n uses of the names svc makes the proxy resolve: its host, unless a wildcard,
// and its DNS endpoints' addresses.
func countNames(m map[string]int, svc *registry.Service, n int, moved *[]string) {
	namesOf(svc, func(k string) { bump(m, k, n, moved) })
}

// namesOf calls f with each use of a name svc makes the proxy resolve, as countNames counts them.
func namesOf(svc *registry.Service, f func(string)) {
	if !svc.Wildcard {
		f(resolve.CacheKey(svc.Host))
	}
	for i := range svc.Ports {
		for j := range svc.Ports[i].Endpoints {
			if ep := &svc.Ports[i].Endpoints[j]; !ep.Unix && !ep.IP.IsValid() {
				f(resolve.CacheKey(ep.Address))
			}
		}
	}
}

// count adds n (1 or -1) uses of svc's keys, noting in ch (when not nil) those whose count
// reached or left zero.
func (l *liveState) count(svc *registry.Service, n int, ch *liveChange) {
	var names, clusters, health *[]string
	if ch != nil {
		names, clusters, health = &ch.names, &ch.clusters, &ch.health
	}
	countNames(l.names, svc, n, names)
	for i := range svc.Ports {
		port := &svc.Ports[i]
		bump(l.clusters, port.Cluster, n, clusters)
		for j := range port.Endpoints {
			bump(l.health, healthKey(&port.Endpoints[j]), n, health)
		}
	}
}

// bump adds n to m[k], dropping k at zero, and appends k to moved (when not nil) when its count
// reached or left zero.
func bump(m map[string]int, k string, n int, moved *[]string) {
	v := m[k] + n
	if v <= 0 {
		delete(m, k)
	} else {
		m[k] = v
	}
	if moved != nil && (v <= 0 || v == 1 && n > 0) {
		*moved = append(*moved, k)
	}
}

// keepResolved makes next the resolved addresses worth keeping, noting which came and went
// among the health keys.
func (l *liveState) keepResolved(next map[string]struct{}, ch *liveChange) {
	for k := range next {
		if _, ok := l.resolved[k]; !ok {
			ch.health = append(ch.health, k)
		}
	}
	for k := range l.resolved {
		if _, ok := next[k]; !ok {
			ch.health = append(ch.health, k)
		}
	}
	l.resolved = next
}

// lives reports whether health key k belongs to the serving snapshot: an endpoint's, or an
// address a DNS endpoint of it resolved to.
func (l *liveState) lives(k string) bool {
	if _, ok := l.health[k]; ok {
		return true
	}
	_, ok := l.resolved[k]
	return ok
}

// resolvedOf lists the addresses old's routes resolved for DNS endpoints that are still live,
// so that endpoints which stay keep their failure streaks and ejections. Only routes that
// served traffic exist, so this costs what was used, not the config's size.
func (l *liveState) resolvedOf(old *table) map[string]struct{} {
	out := map[string]struct{}{}
	if old == nil {
		return out
	}
	for _, v := range old.routes.Range {
		r := v.(*route)
		for i := range r.eps {
			e := &r.eps[i]
			set := e.resolved.Load()
			if _, ok := l.health[e.key]; !ok || set == nil {
				continue
			}
			for _, up := range set.ups {
				_, addr := splitKey(up.Key)
				out[addr] = struct{}{}
			}
		}
	}
	return out
}

// keys yields every health key that lives.
func (l *liveState) keys(yield func(string) bool) {
	for k := range l.health {
		if !yield(k) {
			return
		}
	}
	for k := range l.resolved {
		if _, dup := l.health[k]; !dup && !yield(k) {
			return
		}
	}
}
