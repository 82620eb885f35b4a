package mcp

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// collections returns what c serves, by type URL.
func collections(c *Cache) map[string]*collection {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*collection{}
	for u, coll := range c.colls {
		out[u] = coll
	}
	return out
}

func TestSetAfterSetServesWhatAFreshCacheServes(t *testing.T) {
	t.Parallel()
	first := snapshotOf(t, fiveKinds)
	relabelled := func(labels map[string]string) *registry.Snapshot {
		docs := make([]*config.Document, len(first.Documents))
		for i, d := range first.Documents {
			cp := *d // the same spec message, as an incremental reload keeps it
			if d.Kind == config.KindServiceEntry {
				cp.Labels = labels
			}
			docs[i] = &cp
		}
		return &registry.Snapshot{Documents: docs}
	}
	tests := []struct {
		name string
		next *registry.Snapshot
	}{
		{name: "the same documents again", next: first},
		{name: "a document whose labels changed over the same spec", next: relabelled(map[string]string{"team": "b"})},
		{name: "a document that lost its labels", next: relabelled(nil)},
		{name: "other documents", next: snapshotOf(t, fiveKinds[:strings.Index(fiveKinds, "---\napiVersion: networking.istio.io/v1\nkind: VirtualService")])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reused, fresh := NewCache(), NewCache()
			if err := reused.Set(first); err != nil {
				t.Fatal(err)
			}
			if err := reused.Set(tc.next); err != nil {
				t.Fatal(err)
			}
			if err := fresh.Set(tc.next); err != nil {
				t.Fatal(err)
			}
			got, want := collections(reused), collections(fresh)
			for _, u := range TypeURLs {
				g, w := got[u], want[u]
				if g.version != w.version || len(g.any) != len(w.any) {
					t.Fatalf("%s: version %s with %d resources, a fresh cache has %s with %d", u, g.version, len(g.any), w.version, len(w.any))
				}
				for i := range g.any {
					if !proto.Equal(g.any[i], w.any[i]) {
						t.Errorf("%s resource %d differs from a fresh cache's", u, i)
					}
				}
			}
		})
	}
}
