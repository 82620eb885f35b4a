package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshentry/meshentry/internal/xds/envoy"
)

// encoded is one resource marshalled once for every client: its SotW form (any), its Delta
// form (delta, which shares any) and its content version. It is never modified once made, so
// any number of streams may send it at the same time.
type encoded struct {
	name    string
	version string
	any     *anypb.Any
	delta   *discovery.Resource
}

// typeSet is one type's resources for one group of nodes, sorted by name, with the type's SotW
// version (a hash of the names and per-resource versions, so an unchanged type keeps it).
type typeSet struct {
	url     string
	version string
	list    []*encoded
	anys    []*anypb.Any
	byName  map[string]*encoded
	// full maps every name to its version, built once at first use: a client that needs all
	// of it gets a bulk copy rather than one insertion per resource.
	fullOnce sync.Once
	full     map[string]string
	// wire is the type's resources pre-encoded for full pushes (wire.go).
	wire wire
}

// fullMap returns the shared name-to-version map; callers copy it, never change it.
func (ts *typeSet) fullMap() map[string]string {
	ts.fullOnce.Do(func() {
		ts.full = make(map[string]string, len(ts.list))
		for _, enc := range ts.list {
			ts.full[enc.name] = enc.version
		}
	})
	return ts.full
}

// emptyVersion is the version of a type with no resource: a client asking for it must still be
// answered, or it waits forever.
const emptyVersion = "empty"

// groupSnap is everything one group of nodes is served, by type URL.
type groupSnap struct {
	types map[string]*typeSet
}

// versions returns the SotW version of each non-empty type.
func (g *groupSnap) versions() map[string]string {
	out := make(map[string]string, len(g.types))
	for u, ts := range g.types {
		if len(ts.list) > 0 {
			out[u] = ts.version
		}
	}
	return out
}

// encoder marshals each resource once per content: a resource seen before by pointer (the
// translator hands back the same message for an unchanged service) keeps its encoded form
// without being marshalled; a new message whose encoding equals the one its name had in the
// group's previous snapshot keeps that encoded form and version. It remembers the pointers of
// the current generation (what the last Update and later joins produced) and of the one
// before, so memory is bounded by two snapshots' resources.
type encoder struct {
	prevPtr, curPtr map[types.Resource]*encoded
	// marshals counts resources actually marshalled (pointer misses), for tests.
	marshals uint64
}

func newEncoder() *encoder {
	e := &encoder{}
	e.begin()
	return e
}

// begin starts a generation: what the previous one did not see again is forgotten at the
// next begin.
func (e *encoder) begin() {
	e.prevPtr = e.curPtr
	e.curPtr = map[types.Resource]*encoded{}
}

// encode returns r's shared encoding, marshalling it only when its pointer is new; prev is the
// type's previous set in the group, or nil.
func (e *encoder) encode(typ string, r types.Resource, prev *typeSet) (*encoded, error) {
	if enc := e.curPtr[r]; enc != nil {
		return enc, nil
	}
	if enc := e.prevPtr[r]; enc != nil {
		e.curPtr[r] = enc
		return enc, nil
	}
	name := cachev3.GetResourceName(r)
	b, err := cachev3.MarshalResource(r)
	if err != nil {
		return nil, fmt.Errorf("xds: encode %s %s: %w", typ, name, err)
	}
	e.marshals++
	sum := sha256.Sum256(b)
	version := hex.EncodeToString(sum[:16])
	var enc *encoded
	if prev != nil {
		if old := prev.byName[name]; old != nil && old.version == version {
			enc = old
		}
	}
	if enc == nil {
		a := &anypb.Any{TypeUrl: typ, Value: b}
		enc = &encoded{name: name, version: version, any: a, delta: &discovery.Resource{Name: name, Version: version, Resource: a}}
	}
	e.curPtr[r] = enc
	return enc, nil
}

// snapOf encodes one group's resources. Every type the snapshot cache knows gets a set, empty
// ones with emptyVersion, so that a client asking for any of them is answered.
// prev is the group's previous snapshot, or nil.
func (e *encoder) snapOf(res envoy.Resources, prev *groupSnap) (*groupSnap, error) {
	g := &groupSnap{types: map[string]*typeSet{}}
	for typ, list := range res {
		if cachev3.GetResponseType(typ) == types.UnknownType {
			return nil, fmt.Errorf("xds: unknown resource type %s", typ)
		}
		ts := &typeSet{url: typ, list: make([]*encoded, 0, len(list)), anys: make([]*anypb.Any, 0, len(list)), byName: make(map[string]*encoded, len(list))}
		var before *typeSet
		if prev != nil {
			before = prev.types[typ]
		}
		h := sha256.New()
		for _, r := range list {
			enc, err := e.encode(typ, r, before)
			if err != nil {
				return nil, err
			}
			ts.list = append(ts.list, enc)
			ts.anys = append(ts.anys, enc.any)
			ts.byName[enc.name] = enc
			h.Write([]byte(enc.name))
			h.Write([]byte{0})
			h.Write([]byte(enc.version))
		}
		ts.version = hex.EncodeToString(h.Sum(nil)[:16])
		if len(list) == 0 {
			ts.version = emptyVersion
		}
		g.types[typ] = ts
	}
	for i := range types.UnknownType {
		typ, err := cachev3.GetResponseTypeURL(i)
		if err != nil || g.types[typ] != nil {
			continue
		}
		g.types[typ] = &typeSet{url: typ, version: emptyVersion, byName: map[string]*encoded{}}
	}
	return g, nil
}
