package server

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// TestDeltaStreamOutlivesASotWStreamOfTheSameNode: go-control-plane numbers SotW and Delta
// streams from 1 each, so the first stream of each protocol has id 1. A node with one of each
// must stay known while either is open, and the Delta one must still get pushes once the SotW
// one closed.
func TestDeltaStreamOutlivesASotWStreamOfTheSameNode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, cc := serveTen(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := openDelta(t, ctx, cc, resource.EndpointType)
	d.next(t)
	// A SotW stream of the same node, held open until it has its answer.
	sctx, scancel := context.WithCancel(ctx)
	sotw, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sotw.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: testNode}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := sotw.Recv(); err != nil {
		t.Fatal(err)
	}
	streams := func() int {
		s.status.mu.Lock()
		defer s.status.mu.Unlock()
		return len(s.status.streams)
	}
	if n := streams(); n != 2 {
		t.Fatalf("%d streams tracked with a Delta and a SotW stream open, want 2", n)
	}
	scancel()
	for deadline := time.Now().Add(5 * time.Second); streams() != 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams tracked after the SotW stream closed, want the Delta one", streams())
		}
	}
	if n := s.status.openStreams(testNode); n != 1 {
		t.Fatalf("node has %d open streams, want 1 (the Delta one)", n)
	}
	if err := s.Update(scaleSnapshot(t, dir, 10, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if typ, res, _ := d.next(t); typ != resource.EndpointType || len(res) == 0 {
		t.Fatalf("push after the SotW stream closed: %s with %d resources", typ, len(res))
	}
}
