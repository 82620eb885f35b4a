// Package server publishes registry snapshots over xDS (ADS, State of the World and Delta) with
// go-control-plane: one cache snapshot per kind of node, rebuilt when the registry changes, with
// per-type versions taken from the content so that an unchanged type never wakes a client.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/xds/envoy"
	"github.com/meshentry/meshentry/internal/xds/mcp"
)

// Extra adds resources of other type URLs (the MCP documents) to what every node is served; a
// resource it returns under a type URL the translator also fills replaces the one of that name.
type Extra func(snap *registry.Snapshot) map[string][]types.Resource

// Config configures a Server.
type Config struct {
	Options envoy.Options
	// Extra, when set, is called once per published snapshot.
	Extra Extra
	// MCP, when set, serves the registry's own documents as Istio's MCP collections beside the
	// Envoy types (mcp.Mux), for `meshentry run --config-source`; Update publishes to it.
	MCP    *mcp.Cache
	Logger *slog.Logger
	// MaxNodes bounds the nodes tracked (connected or not); a new node beyond it is refused.
	MaxNodes int
	// MaxUnackedBytes bounds the encoded bytes of responses sent and not yet acknowledged, over
	// all streams (DefaultMaxUnackedBytes when 0 or less); Throttled counts sends that waited.
	MaxUnackedBytes int64
}

// DefaultMaxNodes is the default of Config.MaxNodes.
const DefaultMaxNodes = 10000

// Server serves one registry to any number of xDS clients.
type Server struct {
	cfg   Config
	log   *slog.Logger
	cache *groupCache
	enc   *encoder
	xds   serverv3.Server
	// budget bounds what the streams have sent and the clients not yet acknowledged.
	budget *sendBudget

	// pushMu orders whole Updates, deliveries included, so that the responses of two Updates
	// never interleave on a stream.
	pushMu sync.Mutex
	mu     sync.Mutex
	shared *envoy.Shared
	extra  map[string][]types.Resource
	// groups are the nodes that get the same resources (same namespace, labels, locality,
	// network, generator), built once per snapshot; nodes maps a node id to its group key.
	groups map[string]*group
	nodes  map[string]*nodeInfo
	// refused counts nodes turned away at MaxNodes.
	refused uint64
	status  *tracker
}

// group is the resources of one kind of node, with their per-type versions.
type group struct {
	node     envoy.Node
	versions map[string]string
	snap     *groupSnap
	err      error
}

type nodeInfo struct {
	node  envoy.Node
	key   string
	proto *core.Node
}

// New makes a server that serves nothing until the first Update.
func New(ctx context.Context, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxNodes <= 0 {
		cfg.MaxNodes = DefaultMaxNodes
	}
	if cfg.MaxUnackedBytes <= 0 {
		cfg.MaxUnackedBytes = DefaultMaxUnackedBytes
	}
	s := &Server{cfg: cfg, log: cfg.Logger, groups: map[string]*group{}, nodes: map[string]*nodeInfo{}}
	s.status = newTracker()
	s.cache, s.enc, s.budget = newGroupCache(), newEncoder(), newSendBudget(cfg.MaxUnackedBytes)
	var c cachev3.Cache = s.cache
	if cfg.MCP != nil {
		c = mcp.Mux(s.cache, cfg.MCP)
	}
	s.xds = serverv3.NewServer(ctx, c, s.callbacks())
	return s
}

// Register adds the ADS and CSDS (client status) services to g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, budgetedADS{Server: s.xds, b: s.budget})
	statusv3.RegisterClientStatusDiscoveryServiceServer(g, &csds{s: s})
}

// Update publishes snap: every known kind of node is rebuilt and its group's snapshot replaced;
// the streams watching a type whose version changed are answered, Delta ones with only the
// resources whose own version changed.
func (s *Server) Update(snap *registry.Snapshot) error {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	s.mu.Lock()
	prev := s.shared
	s.mu.Unlock()
	shared := envoy.NewSharedFrom(prev, snap, s.cfg.Options) // reuses what prev's Builds made
	var extra map[string][]types.Resource
	if s.cfg.Extra != nil {
		extra = s.cfg.Extra(snap)
	}
	if s.cfg.MCP != nil {
		if err := s.cfg.MCP.Set(snap); err != nil {
			s.log.Error("xds: MCP documents not published; the proxies keep their last config", "err", err)
		}
	}
	s.mu.Lock()
	s.shared, s.extra = shared, extra
	s.enc.begin()
	var errs []error
	var out []delivery
	for key, g := range s.groups {
		ds, err := s.rebuild(key, g)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, ds...)
	}
	s.mu.Unlock()
	deliver(out)
	return errors.Join(errs...)
}

// rebuild translates g for the current snapshot and publishes it for the group, returning the
// responses to deliver once the lock is released. A group whose translation fails keeps its
// last good snapshot.
func (s *Server) rebuild(key string, g *group) ([]delivery, error) {
	res, err := s.shared.Build(g.node)
	if err != nil {
		g.err = err
		s.log.Error("xds: translation refused; the nodes keep their last config", "group", key, "err", err)
		return nil, err
	}
	for typ, list := range s.extra {
		res[typ] = mergeByName(res[typ], list)
	}
	snap, err := s.enc.snapOf(res, g.snap)
	if err != nil {
		g.err = err
		return nil, err
	}
	g.snap, g.versions, g.err = snap, snap.versions(), nil
	return s.cache.set(key, snap), nil
}

func mergeByName(base, extra []types.Resource) []types.Resource {
	names := map[string]int{}
	for i, r := range base {
		names[cachev3.GetResourceName(r)] = i
	}
	out := append([]types.Resource(nil), base...)
	for _, r := range extra {
		if i, ok := names[cachev3.GetResourceName(r)]; ok {
			out[i] = r
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return cachev3.GetResourceName(out[i]) < cachev3.GetResourceName(out[j]) })
	return out
}

// groupKey names the kind of node: everything the translation reads of it.
func groupKey(n envoy.Node) string {
	labels := make([]string, 0, len(n.Labels))
	for k, v := range n.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	return strings.Join([]string{n.Namespace, n.Locality, n.Network, n.Generator, strings.Join(labels, ",")}, "|")
}

// join registers a node on its first request and places it in its group, building the group
// when it is the first of its kind.
func (s *Server) join(pn *core.Node) error {
	if pn == nil {
		return errors.New("xds: request without a node")
	}
	s.mu.Lock()
	ds, err := s.joinLocked(pn)
	s.mu.Unlock()
	deliver(ds)
	return err
}

func (s *Server) joinLocked(pn *core.Node) ([]delivery, error) {
	if old, ok := s.nodes[pn.Id]; ok {
		old.proto = pn
		return nil, nil
	}
	if len(s.nodes) >= s.cfg.MaxNodes {
		s.refused++
		return nil, fmt.Errorf("xds: %d nodes already known (--xds-max-nodes); node %s refused", len(s.nodes), pn.Id)
	}
	n := envoy.ParseNode(pn)
	key := groupKey(n)
	s.nodes[pn.Id] = &nodeInfo{node: n, key: key, proto: pn}
	ds := s.cache.setNode(pn.Id, key)
	g := s.groups[key]
	if g == nil {
		g = &group{node: n}
		s.groups[key] = g
		if s.shared == nil {
			return ds, nil
		}
		more, err := s.rebuild(key, g)
		return append(ds, more...), err
	}
	if g.snap == nil {
		return ds, g.err
	}
	return ds, nil
}

// forget drops a node whose last stream closed, and its group when it was the last one.
func (s *Server) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.nodes[id]
	if !ok || s.status.openStreams(id) > 0 {
		return
	}
	delete(s.nodes, id)
	s.cache.clearNode(id)
	for _, other := range s.nodes {
		if other.key == n.key {
			return
		}
	}
	delete(s.groups, n.key)
	s.cache.dropGroup(n.key)
}

// Refused counts nodes turned away because MaxNodes was reached.
func (s *Server) Refused() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused
}
