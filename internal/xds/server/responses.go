package server

import (
	"context"
	"maps"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// sotwAnswer decides a State of the World watch as the snapshot cache does in ADS mode: answer
// when the type's version differs from the request's, or (when the watch is new, not woken by
// a change) when the client wants a resource it has not been given; never when the request
// names some resources but not all the type holds (the client is expected to ask again).
func sotwAnswer(ts *typeSet, req *cachev3.Request, sub cachev3.Subscription, changed bool) (cachev3.Response, bool) {
	want := ts.version != req.GetVersionInfo() || !changed && newlyWanted(ts, sub)
	if !want || refusedNames(ts, req) {
		return nil, false
	}
	return newSotwResp(ts, req), true
}

// newlyWanted reports whether the subscription wants a resource the client was not sent.
func newlyWanted(ts *typeSet, sub cachev3.Subscription) bool {
	known := sub.ReturnedResources()
	if sub.IsWildcard() {
		// Called when the client holds ts's version: a map as long as the type is then the one
		// sent with that version, so the names are all there without looking each one up.
		if len(known) == len(ts.list) {
			return false
		}
		for _, enc := range ts.list {
			if _, ok := known[enc.name]; !ok {
				return true
			}
		}
		return false
	}
	for r := range sub.SubscribedResources() {
		if _, ok := known[r]; !ok && ts.byName[r] != nil {
			return true
		}
	}
	return false
}

// refusedNames is the ADS rule of go-control-plane's snapshot cache: a request naming
// resources must name every one the type holds.
func refusedNames(ts *typeSet, req *cachev3.Request) bool {
	names := req.GetResourceNames()
	if len(names) == 0 || ts == nil {
		return false
	}
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	for _, enc := range ts.list {
		if _, ok := set[enc.name]; !ok {
			return true
		}
	}
	return false
}

// sotwResp is one stream's State of the World response: its own DiscoveryResponse (the server
// writes the nonce in it) over the group's shared encoded resources.
type sotwResp struct {
	req  *cachev3.Request
	ts   *typeSet
	resp *discovery.DiscoveryResponse
	once sync.Once
	ret  map[string]string
}

var _ cachev3.Response = (*sotwResp)(nil)

func newSotwResp(ts *typeSet, req *cachev3.Request) *sotwResp {
	r := &sotwResp{req: req, ts: ts}
	anys := ts.anys
	if names := req.GetResourceNames(); len(names) != 0 {
		anys = make([]*anypb.Any, 0, len(names))
		for _, n := range names {
			if enc := ts.byName[n]; enc != nil {
				anys = append(anys, enc.any)
			}
		}
	}
	r.resp = &discovery.DiscoveryResponse{VersionInfo: ts.version, TypeUrl: req.GetTypeUrl()}
	if len(anys) != len(ts.list) || !preEncoded(r.resp, ts.sotwWire) {
		r.resp.Resources = anys
	}
	return r
}

// GetDiscoveryResponse returns the response; its Resources are shared and must not be changed.
func (r *sotwResp) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) { return r.resp, nil }

// GetRequest returns the request the response answers.
func (r *sotwResp) GetRequest() *discovery.DiscoveryRequest { return r.req }

// GetVersion returns the type's version.
func (r *sotwResp) GetVersion() (string, error) { return r.ts.version, nil }

// GetResponseVersion returns the type's version.
func (r *sotwResp) GetResponseVersion() string { return r.ts.version }

// GetReturnedResources maps each resource sent to the response's version, built on the
// stream's goroutine when the server first asks; the map is the stream's to change.
func (r *sotwResp) GetReturnedResources() map[string]string {
	r.once.Do(func() {
		r.ret = make(map[string]string, len(r.resp.Resources))
		if len(r.req.GetResourceNames()) == 0 {
			for _, enc := range r.ts.list {
				r.ret[enc.name] = r.ts.version
			}
			return
		}
		for _, n := range r.req.GetResourceNames() {
			if r.ts.byName[n] != nil {
				r.ret[n] = r.ts.version
			}
		}
	})
	return r.ret
}

// GetContext returns a background context.
func (r *sotwResp) GetContext() context.Context { return context.Background() }

// deltaResp is one stream's Delta response: the resources whose version differs from what the
// subscription says the client holds, and the names it holds that are gone. compute runs on
// the stream's goroutine for a response sent from an Update (lazily, at the first Get), so
// that the diff of each client against a large type is spread over the streams.
type deltaResp struct {
	c    *groupCache
	node string
	// from, when set, is the change from the typeSet the client is known to hold.
	from *typeDiff
	req  *cachev3.DeltaRequest
	sub  cachev3.Subscription
	ts   *typeSet
	once sync.Once
	resp *discovery.DeltaDiscoveryResponse
	next map[string]string
	// changed counts the resources sent, which may be pre-encoded (wire.go).
	changed int
}

var _ cachev3.DeltaResponse = (*deltaResp)(nil)

// compute fills the response and reports whether it is worth sending: something changed or
// went, or it is the first answer to a wildcard subscription (Envoy waits for one to finish
// its initialisation, even an empty one).
func (r *deltaResp) compute() bool {
	r.once.Do(r.diff)
	return r.changed > 0 || len(r.resp.RemovedResources) > 0 ||
		r.sub.IsWildcard() && r.req.GetResponseNonce() == ""
}

func (r *deltaResp) diff() {
	var changed []*discovery.Resource
	var removed []string
	returned := r.sub.ReturnedResources()
	switch {
	case r.from != nil:
		changed, removed = r.from.get()
		r.next = r.from.apply(returned)
	case r.sub.IsWildcard():
		changed, removed, r.next = diffWildcard(r.ts, returned)
	default:
		r.next = make(map[string]string, len(r.sub.SubscribedResources()))
		for name := range r.sub.SubscribedResources() {
			prev, found := returned[name]
			if enc := r.ts.byName[name]; enc != nil {
				if prev != enc.version {
					changed = append(changed, enc.delta)
				}
				r.next[name] = enc.version
			} else if found {
				removed = append(removed, name)
			}
		}
	}
	r.resp = &discovery.DeltaDiscoveryResponse{RemovedResources: removed,
		TypeUrl: r.req.GetTypeUrl(), SystemVersionInfo: r.ts.version}
	// changed holds distinct names of the type, so as many as the type has is all of them.
	if len(changed) == 0 || len(changed) != len(r.ts.list) || !preEncoded(r.resp, r.ts.deltaWire) {
		r.resp.Resources = changed
	}
	r.changed = len(changed)
}

// diffWildcard compares a wildcard client's holdings with the whole type. When the client holds
// no name the type lacks (the usual case), the next map is a bulk copy of what it holds with
// the changes written over, rather than one insertion per resource.
func diffWildcard(ts *typeSet, returned map[string]string) ([]*discovery.Resource, []string, map[string]string) {
	var changed []*discovery.Resource
	if len(returned) == 0 {
		changed = make([]*discovery.Resource, 0, len(ts.list)) // a new client: all of it
	}
	hits := 0
	for _, enc := range ts.list {
		prev, ok := returned[enc.name]
		if ok {
			hits++
		}
		if !ok || prev != enc.version {
			changed = append(changed, enc.delta)
		}
	}
	if hits == len(returned) {
		if len(changed) == 0 {
			return nil, nil, returned
		}
		if len(changed) >= len(ts.list)/2 {
			return changed, nil, maps.Clone(ts.fullMap())
		}
		next := maps.Clone(returned)
		for _, d := range changed {
			next[d.Name] = d.Version
		}
		return changed, nil, next
	}
	var removed []string
	next := maps.Clone(ts.fullMap())
	for name := range returned {
		if ts.byName[name] == nil {
			removed = append(removed, name)
		}
	}
	return changed, removed, next
}

// GetDeltaDiscoveryResponse returns the response; its Resources are shared and must not be
// changed.
func (r *deltaResp) GetDeltaDiscoveryResponse() (*discovery.DeltaDiscoveryResponse, error) {
	r.once.Do(r.lazyDiff)
	return r.resp, nil
}

// lazyDiff is diff on the stream's goroutine, for a response an Update sent: a wildcard
// client's next map is recorded for its next request.
func (r *deltaResp) lazyDiff() {
	if r.from != nil {
		// Checked again here: the stream may have handled a request naming resources since
		// the Update decided.
		r.c.mu.Lock()
		if !r.c.holdsLocked(r.node, r.ts.url, r.sub.ReturnedResources(), r.from.from) {
			r.from = nil
		}
		r.c.mu.Unlock()
	}
	r.diff()
	if r.sub.IsWildcard() {
		r.c.record(r.node, r.ts.url, r.next, r.ts)
	}
}

// GetDeltaRequest returns the request the response answers.
func (r *deltaResp) GetDeltaRequest() *discovery.DeltaDiscoveryRequest { return r.req }

// GetSystemVersion returns the type's version.
func (r *deltaResp) GetSystemVersion() (string, error) { return r.ts.version, nil }

// GetResponseVersion returns the type's version.
func (r *deltaResp) GetResponseVersion() string { return r.ts.version }

// GetNextVersionMap returns what the client holds once it applies the response.
func (r *deltaResp) GetNextVersionMap() map[string]string {
	r.once.Do(r.lazyDiff)
	return r.next
}

// GetReturnedResources returns what the client holds once it applies the response.
func (r *deltaResp) GetReturnedResources() map[string]string { return r.GetNextVersionMap() }

// GetContext returns a background context.
func (r *deltaResp) GetContext() context.Context { return context.Background() }
