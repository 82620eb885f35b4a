package envoy

import (
	"sort"
	"strings"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// A translation is cached per kind of node (classKey) and per service port: what one Build
// made is the next Build's reference, and a piece is reused, as the same proto pointers, when
// everything it was made from is unchanged. Services are immutable and the registry reuses
// them for unchanged specs (registry.BuildFrom), so the service pointer stands for its whole
// content; the rest of a piece's inputs (the DestinationRule applied, the VirtualService
// target) are compared by value. Aggregates (port listeners, route tables) are reassembled
// from the pieces each Build and reused as a whole when all their members are.

// maxStale is how many snapshots a class not rebuilt keeps its cache: a node kind that left
// costs memory for that long, one whose Build failed keeps its reference that long.
const maxStale = 2

// classCache is what one successful Build made for one kind of node; read only once stored.
type classCache struct {
	stale    int
	clusters map[svcPort]*clusterPiece
	vhosts   map[svcPort]*routev3.VirtualHost
	chains   map[svcPort]*chainPiece
	grpc     map[svcPort]*grpcPiece
	ports    map[uint32]*portPiece
	// interned holds resources rebuilt every time (VirtualService hosts, trimmed hosts, the
	// fixed resources) by kind and name, so that an equal one keeps its pointer.
	interned map[string]proto.Message
	// routeNames are the RDS names of each listener, kept so Check need not decode them again.
	routeNames map[*listener.Listener][]string
}

// newClassCache returns an empty cache sized as like (nil for none), since growing maps of
// 10,000 entries was a third of an incremental Build.
func newClassCache(like *classCache) *classCache {
	if like == nil {
		like = &classCache{}
	}
	return &classCache{
		clusters:   make(map[svcPort]*clusterPiece, len(like.clusters)),
		vhosts:     make(map[svcPort]*routev3.VirtualHost, len(like.vhosts)),
		chains:     make(map[svcPort]*chainPiece, len(like.chains)),
		grpc:       make(map[svcPort]*grpcPiece, len(like.grpc)),
		ports:      make(map[uint32]*portPiece, len(like.ports)),
		interned:   make(map[string]proto.Message, len(like.interned)),
		routeNames: make(map[*listener.Listener][]string, len(like.routeNames)),
	}
}

type svcPort struct {
	svc  *registry.Service
	port uint32
}

// clusterPiece is the clusters (the port's and its subsets') and load assignments of one
// service port, made under applied.
type clusterPiece struct {
	applied  *policy.Applied
	clusters []types.Resource
	clas     []types.Resource
}

// chainPiece is the L4 filter chain of one service port sending to target; key stands for its
// match, for dropping a later chain with an equal one.
type chainPiece struct {
	target string
	key    string
	chain  *listener.FilterChain
}

// grpcPiece is a proxyless client's API listener of one service port and its route table when
// no VirtualService routes the host.
type grpcPiece struct {
	listener *listener.Listener
	defRC    *routev3.RouteConfiguration
}

// portPiece is one port's aggregates with the members they were assembled from.
type portPiece struct {
	httpChain *listener.FilterChain
	vhosts    []*routev3.VirtualHost
	rc        *routev3.RouteConfiguration
	chains    []*listener.FilterChain
	catchAll  string
	listener  *listener.Listener
}

// classKey names the kind of node: everything of the node a translation reads. The id, IP and
// name only label errors.
func classKey(n Node) string {
	labels := make([]string, 0, len(n.Labels))
	for k, v := range n.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	return strings.Join([]string{n.Namespace, n.Locality, n.Network, n.Generator, strings.Join(labels, "\x00")}, "\x01")
}

// appliedEqual reports whether two applied rules give the same clusters: clusterFor reads the
// traffic policy and the subsets only.
func appliedEqual(a, b *policy.Applied) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || len(a.Subsets) != len(b.Subsets) || !policyEqual(a.Traffic, b.Traffic) {
		return false
	}
	for i := range a.Subsets {
		x, y := &a.Subsets[i], &b.Subsets[i]
		if x.Name != y.Name || !labelsEqual(x.Labels, y.Labels) || !policyEqual(x.Traffic, y.Traffic) {
			return false
		}
	}
	return true
}

func policyEqual[M proto.Message](a, b M) bool {
	return any(a) == any(b) || proto.Equal(a, b)
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// sameList reports whether two lists hold the same pointers in the same order.
func sameList[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// intern returns the previous Build's resource of this kind and name when it equals m, so an
// unchanged resource keeps its pointer; else m, which is new and to be validated.
func intern[M proto.Message](b *builder, key string, m M) M {
	if old, ok := b.old.interned[key].(M); ok && proto.Equal(old, m) {
		b.cur.interned[key] = old
		return old
	}
	b.cur.interned[key] = m
	b.fresh = append(b.fresh, m)
	return m
}

// matchKey stands for the filter chain match l4Chains gives svc: its SNI (TLS only) and its
// addresses, or none at all for a TCP service without addresses.
func matchKey(svc *registry.Service, tls bool) string {
	if !tls && len(svc.Addresses) == 0 {
		return "\x00"
	}
	var b strings.Builder
	if tls {
		b.WriteString(svc.Host)
	}
	for _, p := range svc.Addresses {
		b.WriteByte('|')
		b.WriteString(p.String())
	}
	return b.String()
}

// Kinds of piece sameAsBefore looks up.
const (
	kindClusters = iota // clusters and load assignments
	kindVHosts
	kindChains
)

// scanMisses is how many misses of a kind a Build looks for among the reference's pieces: a
// push changes one or a few services, and their messages are found by a scan of the pieces; a
// snapshot built without reuse (every service new) would pay a proto.Equal per message, which
// costs more than the translation it saves, so beyond this the rest count as new.
const scanMisses = 16

// sameAsBefore returns the reference translation's message of m's kind and name, made for a
// service port with k's host and port, when it equals m; else m, which is new and to be
// validated. A service whose spec changed is a new service, but most of what it gives (its
// cluster when only endpoints moved, its virtual host) is unchanged; keeping those messages
// keeps the tables that hold them too.
func sameAsBefore[M proto.Message](b *builder, kind int, k svcPort, m M) M {
	if b.misses[kind] < scanMisses {
		b.misses[kind]++
		want := pieceKey(m)
		var old proto.Message
		b.old.scan(kind, k, func(r proto.Message) {
			if pieceKey(r) == want {
				old = r
			}
		})
		if o, ok := old.(M); ok && proto.Equal(o, m) {
			return o
		}
	}
	b.fresh = append(b.fresh, m)
	return m
}

// pieceName is a message's kind and name, as byName keys them.
type pieceName struct {
	kind protoreflect.FullName
	name string
}

func pieceKey(m proto.Message) pieceName { return pieceName{proto.MessageName(m), nameOf(m)} }

// each calls f with every message of the cache's pieces of kind, and the service port each
// was made for.
func (c *classCache) each(kind int, f func(svcPort, proto.Message)) {
	switch kind {
	case kindClusters:
		for k, p := range c.clusters {
			for _, r := range p.clusters {
				f(k, r)
			}
			for _, r := range p.clas {
				f(k, r)
			}
		}
	case kindVHosts:
		for k, vh := range c.vhosts {
			f(k, vh)
		}
	default:
		for k, ch := range c.chains {
			f(k, ch.chain)
		}
	}
}

// scan calls f with the messages of kind made for a service port of like's host and port.
func (c *classCache) scan(kind int, like svcPort, f func(proto.Message)) {
	c.each(kind, func(k svcPort, m proto.Message) {
		if k.port == like.port && k.svc.Host == like.svc.Host {
			f(m)
		}
	})
}
