package server

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/xds/envoy"
)

func build(t *testing.T, snap *registry.Snapshot) envoy.Resources {
	t.Helper()
	res, err := envoy.NewShared(snap, envoy.Options{}).Build(envoy.ParseNode(&core.Node{Id: testNode}))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestEncoderKeepsUnchangedResources checks the encoding cache's two keys: the same message
// pointer is not marshalled again, and a new message with the same content keeps the encoding
// and version it had, so that only a resource whose content changed gets a new version.
func TestEncoderKeepsUnchangedResources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := build(t, scaleSnapshot(t, dir, 20, 0, 1))
	total := 0
	for _, list := range base {
		total += len(list)
	}
	tests := []struct {
		name string
		next envoy.Resources
		// marshals is how many resources the second generation marshals; changed lists the
		// types whose version changes, with how many of their resources change.
		marshals uint64
		changed  map[string]int
	}{
		{name: "the same messages are not marshalled again", next: base, marshals: 0, changed: map[string]int{}},
		{name: "equal new messages keep their encodings", next: build(t, scaleSnapshot(t, dir, 20, 0, 2)),
			marshals: uint64(total), changed: map[string]int{}},
		{name: "one changed entry changes its load assignment only", next: build(t, scaleSnapshot(t, dir, 20, 1, 3)),
			marshals: uint64(total), changed: map[string]int{resource.EndpointType: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEncoder()
			first, err := e.snapOf(base, nil)
			if err != nil {
				t.Fatal(err)
			}
			before := e.marshals
			e.begin()
			second, err := e.snapOf(tt.next, first)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.marshals - before; got != tt.marshals {
				t.Errorf("marshalled %d resources, want %d", got, tt.marshals)
			}
			for typ, ts := range second.types {
				old := first.types[typ]
				differ := 0
				for _, enc := range ts.list {
					if old.byName[enc.name] != enc {
						differ++
					}
				}
				if differ != tt.changed[typ] {
					t.Errorf("%s: %d resources with a new encoding, want %d", typ, differ, tt.changed[typ])
				}
				if versionChanged := ts.version != old.version; versionChanged != (tt.changed[typ] > 0) {
					t.Errorf("%s: version %s -> %s", typ, old.version, ts.version)
				}
			}
		})
	}
}
