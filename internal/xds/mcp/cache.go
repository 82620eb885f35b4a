package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	mcpapi "istio.io/api/mcp/v1alpha1"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// Cache serves the MCP collections to go-control-plane's xDS server (pkg/server/v3), State of
// the World, every response the whole collection as istiod sends it. go-control-plane's own
// caches do not fit: the snapshot cache knows only Envoy's types, and the linear cache sends
// only the changed resources of a type that is not CDS or LDS, so a client could never see a
// document deleted. A collection's version is a hash of its resources' names and content
// versions: a push that changes nothing in a collection wakes none of its watchers.
type Cache struct {
	// setMu orders Sets; memo, which only Set uses, holds each document as last published.
	setMu sync.Mutex
	memo  map[proto.Message]*encodedDoc

	mu      sync.Mutex
	colls   map[string]*collection
	watches map[string]map[uint64]watch
	nextID  uint64
}

// collection is one type URL's current state, marshalled once for every client.
type collection struct {
	version  string
	any      []*anypb.Any
	returned map[string]string
}

// watch is an open SotW request waiting for its collection to change.
type watch struct {
	req *discovery.DiscoveryRequest
	out chan cache.Response
}

var _ cache.Cache = (*Cache)(nil)

// NewCache returns a Cache serving empty collections until Set.
func NewCache() *Cache {
	c := &Cache{colls: map[string]*collection{}, watches: map[string]map[uint64]watch{}}
	for _, u := range TypeURLs {
		c.colls[u], _ = newCollection(nil, nil)
		c.watches[u] = map[uint64]watch{}
	}
	return c
}

// Serves reports whether the cache answers requests for typeURL (for a MuxCache's Classify).
func Serves(typeURL string) bool { return kindOf[typeURL] != "" }

// encodedDoc is a document as last published: its resource and that resource as an Any. A
// snapshot shares the decoded spec of every document a reload did not touch, so a spec seen
// before, under the same metadata, is served from here rather than marshalled three times
// again (body, content version, Any): a reload costs what it changed, not the whole registry.
type encodedDoc struct {
	namespace, name string
	labels          map[string]string
	created         time.Time
	res             *mcpapi.Resource
	any             *anypb.Any
}

func (e *encodedDoc) same(doc *config.Document) bool {
	return e.namespace == doc.Namespace && e.name == doc.Name && e.created.Equal(doc.Created) && maps.Equal(e.labels, doc.Labels)
}

// Set publishes the snapshot's documents; collections whose content changed are pushed to their
// watchers, the others are left alone.
func (c *Cache) Set(snap *registry.Snapshot) error {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	next := make(map[proto.Message]*encodedDoc, len(snap.Documents))
	byRes := make(map[*mcpapi.Resource]*encodedDoc, len(snap.Documents))
	byType := resourcesWith(snap, func(doc *config.Document) (*mcpapi.Resource, error) {
		e := c.memo[doc.Spec]
		if e == nil || !e.same(doc) {
			r, err := Resource(doc)
			if err != nil {
				return nil, err
			}
			a, err := anypb.New(r)
			if err != nil {
				return nil, err
			}
			e = &encodedDoc{namespace: doc.Namespace, name: doc.Name, labels: doc.Labels, created: doc.Created, res: r, any: a}
		}
		next[doc.Spec], byRes[e.res] = e, e
		return e.res, nil
	})
	err := c.publish(byType, func(r types.Resource) (*anypb.Any, error) {
		if e := byRes[r.(*mcpapi.Resource)]; e != nil {
			return e.any, nil
		}
		return anypb.New(r)
	})
	if err == nil {
		c.memo = next
	}
	return err
}

// SetResources publishes resources by type URL as Resources returns them; a type URL not given
// is left as it was.
func (c *Cache) SetResources(byType map[string][]types.Resource) error {
	c.setMu.Lock()
	defer c.setMu.Unlock()
	c.memo = nil // what Set remembered may no longer be what is served
	return c.publish(byType, func(r types.Resource) (*anypb.Any, error) { return anypb.New(r) })
}

func (c *Cache) publish(byType map[string][]types.Resource, anyOf func(types.Resource) (*anypb.Any, error)) error {
	next := map[string]*collection{}
	for u, rs := range byType {
		if !Serves(u) {
			return fmt.Errorf("mcp cache: type %s not served", u)
		}
		coll, err := newCollection(rs, anyOf)
		if err != nil {
			return fmt.Errorf("mcp cache: %s: %w", u, err)
		}
		next[u] = coll
	}
	var wake []watch
	var with []*collection
	c.mu.Lock()
	for u, coll := range next {
		if c.colls[u].version == coll.version {
			continue
		}
		c.colls[u] = coll
		for id, w := range c.watches[u] {
			wake, with = append(wake, w), append(with, coll)
			delete(c.watches[u], id)
		}
	}
	c.mu.Unlock()
	// Sent without the lock: an ADS stream's channel is shared by all its types and may be full
	// until the stream's loop, which may be cancelling a watch (and so taking the lock), drains it.
	for i, w := range wake {
		w.out <- c.respond(w.req, with[i])
	}
	return nil
}

// Version returns a collection's current version.
func (c *Cache) Version(typeURL string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if coll := c.colls[typeURL]; coll != nil {
		return coll.version
	}
	return ""
}

func newCollection(rs []types.Resource, anyOf func(types.Resource) (*anypb.Any, error)) (*collection, error) {
	coll := &collection{any: make([]*anypb.Any, 0, len(rs)), returned: make(map[string]string, len(rs))}
	h := sha256.New()
	for _, r := range rs {
		a, err := anyOf(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", NameOf(r), err)
		}
		coll.any = append(coll.any, a)
		coll.returned[NameOf(r)] = VersionOf(r)
		fmt.Fprintf(h, "%s\x00%s\x00", NameOf(r), VersionOf(r))
	}
	coll.version = hex.EncodeToString(h.Sum(nil)[:8])
	return coll, nil
}

// respond builds a response of its own for each stream, since the server writes its nonce in it.
func (c *Cache) respond(req *discovery.DiscoveryRequest, coll *collection) cache.Response {
	return &cache.PassthroughResponse{
		Request:           req,
		DiscoveryResponse: &discovery.DiscoveryResponse{VersionInfo: coll.version, Resources: coll.any, TypeUrl: req.GetTypeUrl()},
		ReturnedResources: coll.returned,
	}
}

// CreateWatch answers at once a request that does not hold the current version, and otherwise
// waits for a change. A NACK is not answered with the same content again: it waits too, as
// istiod does, since the client refused exactly that.
func (c *Cache) CreateWatch(req *cache.Request, _ cache.Subscription, out chan cache.Response) (func(), error) {
	u := req.GetTypeUrl()
	if !Serves(u) {
		return nil, fmt.Errorf("mcp cache: type %s not served", u)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	coll := c.colls[u]
	if req.GetVersionInfo() != coll.version && req.GetErrorDetail() == nil {
		out <- c.respond(req, coll)
		return func() {}, nil
	}
	c.nextID++
	id := c.nextID
	c.watches[u][id] = watch{req: req, out: out}
	return func() {
		c.mu.Lock()
		delete(c.watches[u], id)
		c.mu.Unlock()
	}, nil
}

// CreateDeltaWatch refuses: the MCP collections are served State of the World, as istiod
// serves them.
func (c *Cache) CreateDeltaWatch(req *cache.DeltaRequest, _ cache.Subscription, _ chan cache.DeltaResponse) (func(), error) {
	return nil, fmt.Errorf("mcp cache: %s is served State of the World only", req.GetTypeUrl())
}

// Fetch answers a REST-style poll with the collection's current state.
func (c *Cache) Fetch(_ context.Context, req *cache.Request) (cache.Response, error) {
	u := req.GetTypeUrl()
	if !Serves(u) {
		return nil, fmt.Errorf("mcp cache: type %s not served", u)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	coll := c.colls[u]
	if req.GetVersionInfo() == coll.version {
		return nil, errors.New("mcp cache: skip fetch: version up to date")
	}
	return c.respond(req, coll), nil
}

// Mux serves the MCP collections from m and every other type URL from envoy (the server's
// snapshot cache), so that one ADS server answers Envoys and meshentry proxies alike.
func Mux(envoy cache.Cache, m *Cache) *cache.MuxCache {
	classify := func(typeURL string) string {
		if Serves(typeURL) {
			return "mcp"
		}
		return "envoy"
	}
	return &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return classify(r.GetTypeUrl()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return classify(r.GetTypeUrl()) },
		Caches:        map[string]cache.Cache{"mcp": m, "envoy": envoy},
	}
}
