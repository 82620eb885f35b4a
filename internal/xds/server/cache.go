package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// groupCache serves go-control-plane's xDS server (pkg/server/v3) from one encoded snapshot per
// group of nodes. go-control-plane's snapshot cache keeps a snapshot per node and marshals every
// resource again for each response; here a resource is marshalled once (encoder) and every
// response of every node in the group points at the same bytes. Its rules for when to answer
// are the snapshot cache's (ADS mode): a SotW watch is answered when its type's version
// changes, a Delta watch when a resource it holds or wants changed.
type groupCache struct {
	mu sync.Mutex
	// nodes maps a node id to its group key; groups holds each group's current snapshot.
	nodes  map[string]string
	groups map[string]*groupSnap
	// watches holds the open watches by group key; a watch of a node not yet placed in a
	// group waits under pending, by node id.
	watches map[string]map[int64]*watch
	pending map[string]map[int64]*watch
	nextID  int64
	// synced records, per node and type, the map a wildcard Delta client was last known to
	// hold (synced.go).
	synced map[string]syncRec
}

// watch is one open SotW or Delta request waiting for a change.
type watch struct {
	node  string
	sotw  *cachev3.Request
	delta *cachev3.DeltaRequest
	sub   cachev3.Subscription
	out   chan cachev3.Response
	dout  chan cachev3.DeltaResponse
}

func (w *watch) typeURL() string {
	if w.sotw != nil {
		return w.sotw.GetTypeUrl()
	}
	return w.delta.GetTypeUrl()
}

// delivery is a response found for a watch, sent after the locks are released: an ADS
// stream's channel is shared by all its types and drained by the stream's own loop, which
// may be waiting for the server's lock in a callback.
type delivery struct {
	out  chan cachev3.Response
	dout chan cachev3.DeltaResponse
	resp cachev3.Response
	dr   cachev3.DeltaResponse
}

func deliver(ds []delivery) {
	for _, d := range ds {
		if d.out != nil {
			d.out <- d.resp
		} else {
			d.dout <- d.dr
		}
	}
}

var _ cachev3.Cache = (*groupCache)(nil)

func newGroupCache() *groupCache {
	return &groupCache{nodes: map[string]string{}, groups: map[string]*groupSnap{},
		watches: map[string]map[int64]*watch{}, pending: map[string]map[int64]*watch{}, synced: map[string]syncRec{}}
}

// setNode places a node in its group; its watches opened before wait on the group.
func (c *groupCache) setNode(id, key string) []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nodes[id] = key
	ws := c.pending[id]
	delete(c.pending, id)
	var out []delivery
	for wid, w := range ws {
		if d, ok := c.answer(c.groups[key], w, false, nil); ok {
			out = append(out, d)
			continue
		}
		c.bucket(key)[wid] = w
	}
	return out
}

// clearNode forgets a node; its streams are closed, so its watches are already cancelled.
func (c *groupCache) clearNode(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.groups[c.nodes[id]]; g != nil {
		for typ := range g.types {
			delete(c.synced, syncKey(id, typ))
		}
	}
	delete(c.nodes, id)
	delete(c.pending, id)
}

// dropGroup forgets a group no node uses any more.
func (c *groupCache) dropGroup(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, key)
	if len(c.watches[key]) == 0 {
		delete(c.watches, key)
	}
}

// set publishes a group's snapshot and returns the responses for the watches it answers.
func (c *groupCache) set(key string, g *groupSnap) []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.groups[key]
	c.groups[key] = g
	var out []delivery
	diffs := map[string]*typeDiff{}
	for id, w := range c.watches[key] {
		typ := w.typeURL()
		if old != nil && old.types[typ] != nil && g.types[typ] != nil && old.types[typ].version == g.types[typ].version {
			continue // same content: nobody is woken for nothing
		}
		if old != nil && old.types[typ] != nil && g.types[typ] != nil && diffs[typ] == nil {
			diffs[typ] = &typeDiff{from: old.types[typ], to: g.types[typ]}
		}
		if d, ok := c.answer(g, w, old != nil, diffs[typ]); ok {
			out = append(out, d)
			delete(c.watches[key], id)
		}
	}
	return out
}

// answer decides whether w is answered by g now; changed is set when g is a newer snapshot
// than the one the watch was opened on.
func (c *groupCache) answer(g *groupSnap, w *watch, changed bool, from *typeDiff) (delivery, bool) {
	if g == nil {
		return delivery{}, false
	}
	ts := g.types[w.typeURL()]
	if ts == nil {
		return delivery{}, false
	}
	if w.sotw != nil {
		resp, ok := sotwAnswer(ts, w.sotw, w.sub, changed)
		return delivery{out: w.out, resp: resp}, ok
	}
	// A wildcard watch on a type that changed is answered lazily: the diff against what the
	// client holds is computed by the stream's own goroutine when it sends, not under the lock.
	dr := &deltaResp{c: c, node: w.node, req: w.delta, sub: w.sub, ts: ts}
	if changed && w.sub.IsWildcard() {
		if from != nil && nameless(w.delta) && c.holdsLocked(w.node, ts.url, w.sub.ReturnedResources(), from.from) {
			dr.from = from
		}
		return delivery{dout: w.dout, dr: dr}, true
	}
	if w.sub.IsWildcard() && w.delta.GetResponseNonce() != "" && nameless(w.delta) &&
		c.holdsLocked(w.node, ts.url, w.sub.ReturnedResources(), ts) {
		return delivery{}, false // an ACK of what the client already holds: nothing to diff
	}
	sent := dr.compute()
	if w.sub.IsWildcard() {
		c.synced[syncKey(w.node, ts.url)] = syncRec{m: dr.next, n: len(dr.next), ts: ts}
	}
	if !sent {
		return delivery{}, false
	}
	return delivery{dout: w.dout, dr: dr}, true
}

func (c *groupCache) bucket(key string) map[int64]*watch {
	m := c.watches[key]
	if m == nil {
		m = map[int64]*watch{}
		c.watches[key] = m
	}
	return m
}

// open answers w at once when it can (sent on the caller's goroutine, which is the stream's,
// as go-control-plane's own caches do) or keeps it until a change.
func (c *groupCache) open(w *watch) (func(), error) {
	c.mu.Lock()
	if w.delta != nil && !nameless(w.delta) {
		// The request may have changed the subscription's map in place: diff it in full.
		delete(c.synced, syncKey(w.node, w.typeURL()))
	}
	key, known := c.nodes[w.node]
	var d delivery
	var ok bool
	if known {
		d, ok = c.answer(c.groups[key], w, false, nil)
	}
	if ok {
		c.mu.Unlock()
		deliver([]delivery{d})
		return func() {}, nil
	}
	c.nextID++
	id := c.nextID
	m := c.pending
	bk := w.node
	if known {
		m, bk = c.watches, key
	}
	if m[bk] == nil {
		m[bk] = map[int64]*watch{}
	}
	m[bk][id] = w
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		// The node's bucket may have moved from pending to its group since.
		delete(c.pending[w.node], id)
		if k, ok := c.nodes[w.node]; ok {
			delete(c.watches[k], id)
		}
		delete(c.watches[bk], id)
	}, nil
}

// CreateWatch opens a State of the World watch.
func (c *groupCache) CreateWatch(req *cachev3.Request, sub cachev3.Subscription, out chan cachev3.Response) (func(), error) {
	return c.open(&watch{node: req.GetNode().GetId(), sotw: req, sub: sub, out: out})
}

// CreateDeltaWatch opens a Delta watch.
func (c *groupCache) CreateDeltaWatch(req *cachev3.DeltaRequest, sub cachev3.Subscription, out chan cachev3.DeltaResponse) (func(), error) {
	return c.open(&watch{node: req.GetNode().GetId(), delta: req, sub: sub, dout: out})
}

// Fetch answers a REST poll with the node's group's current resources of the type.
func (c *groupCache) Fetch(_ context.Context, req *cachev3.Request) (cachev3.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key, ok := c.nodes[req.GetNode().GetId()]
	g := c.groups[key]
	if !ok || g == nil {
		return nil, fmt.Errorf("xds: no snapshot for node %q", req.GetNode().GetId())
	}
	ts := g.types[req.GetTypeUrl()]
	if ts == nil {
		return nil, fmt.Errorf("xds: type %s not served", req.GetTypeUrl())
	}
	if req.GetVersionInfo() == ts.version {
		return nil, &types.SkipFetchError{}
	}
	return newSotwResp(ts, req), nil
}
