package server

import (
	"reflect"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// A Delta client on a wildcard subscription holds every resource of its type, so diffing what
// it holds against the type on every ACK and every push costs one map lookup per resource per
// client. The cache avoids that when it knows the client's map: syncRec records that the map a
// response handed to a stream held exactly one typeSet's versions. go-control-plane keeps that
// map as the subscription's state and changes it only when the client names resources in a
// request, so a nameless request whose subscription still holds that very map (same identity,
// same length) holds that typeSet: an ACK then needs no diff at all, and a push needs only
// what changed between two typeSets, computed once for all clients (typeDiff).
type syncRec struct {
	m  map[string]string // kept, so that its address is never reused while recorded
	n  int
	ts *typeSet
}

func syncKey(node, typeURL string) string { return node + "\x00" + typeURL }

func sameMap(a, b map[string]string) bool {
	return a != nil && b != nil && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// record notes that m, now given to node's stream for typeURL, holds ts's versions.
func (c *groupCache) record(node, typeURL string, m map[string]string, ts *typeSet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, known := c.nodes[node]; known {
		c.synced[syncKey(node, typeURL)] = syncRec{m: m, n: len(m), ts: ts}
	}
}

// holds reports whether returned is known to hold exactly ts's versions. The caller holds the
// stream's state (it is the stream's goroutine, or the stream is waiting on a watch).
func (c *groupCache) holdsLocked(node, typeURL string, returned map[string]string, ts *typeSet) bool {
	rec, ok := c.synced[syncKey(node, typeURL)]
	return ok && rec.ts == ts && rec.n == len(returned) && sameMap(rec.m, returned)
}

// nameless reports whether a Delta request leaves the subscription's map as it was.
func nameless(req *discovery.DeltaDiscoveryRequest) bool {
	return len(req.GetResourceNamesSubscribe()) == 0 && len(req.GetResourceNamesUnsubscribe()) == 0 &&
		len(req.GetInitialResourceVersions()) == 0
}

// typeDiff is what changed between two typeSets of a group, computed once by the first stream
// that needs it.
type typeDiff struct {
	from, to *typeSet
	once     sync.Once
	changed  []*discovery.Resource
	removed  []string
}

func (d *typeDiff) get() ([]*discovery.Resource, []string) {
	d.once.Do(func() {
		for _, enc := range d.to.list {
			if old := d.from.byName[enc.name]; old == nil || old.version != enc.version {
				d.changed = append(d.changed, enc.delta)
			}
		}
		for _, enc := range d.from.list {
			if d.to.byName[enc.name] == nil {
				d.removed = append(d.removed, enc.name)
			}
		}
	})
	return d.changed, d.removed
}

// apply makes returned, the map of a client holding d.from, what it holds once it applies d,
// in place. go-control-plane asks caches not to change a subscription's map; this one is
// changed only on the stream's own goroutine (lazyDiff runs in the stream's send), after its
// watch was answered, and the map is this stream's alone (every map the cache hands out is a
// fresh copy), so nothing else reads it meanwhile, and the server installs the same map as
// the subscription's next. Copying it instead costs a 10,000-entry map per client per push.
func (d *typeDiff) apply(returned map[string]string) map[string]string {
	changed, removed := d.get()
	next := returned
	for _, r := range changed {
		next[r.Name] = r.Version
	}
	for _, name := range removed {
		delete(next, name)
	}
	return next
}
