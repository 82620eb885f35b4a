package server

import (
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/xds/envoy"
)

const testNode = "sidecar~10.9.0.1~c1.default~default.svc.cluster.local"

// serve runs an ADS server over c on loopback and returns a connection to it.
func serve(t *testing.T, c cachev3.Cache) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	ctx, cancel := context.WithCancel(context.Background())
	discovery.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, c, nil))
	go func() { _ = g.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); cancel(); g.Stop() })
	return cc
}

// fetched is what one client received: per type, each resource's encoding by name.
type fetched map[string]map[string][]byte

// sotwFetch asks for each type once, State of the World, and returns the answers.
func sotwFetch(t *testing.T, cc *grpc.ClientConn, typs ...string) fetched {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := fetched{}
	for _, typ := range typs {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: testNode}, TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		out[typ] = map[string][]byte{}
		for _, a := range resp.Resources {
			m, err := a.UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			out[typ][cachev3.GetResourceName(m)] = a.Value
		}
	}
	return out
}

// deltaStream is a Delta client that records the resources of each response.
type deltaStream struct {
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
}

func openDelta(t *testing.T, ctx context.Context, cc *grpc.ClientConn, typs ...string) *deltaStream {
	t.Helper()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range typs {
		if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: testNode}, TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
	}
	return &deltaStream{stream: stream}
}

// next receives one response, ACKs it and returns its resources and removed names.
func (d *deltaStream) next(t *testing.T) (string, map[string][]byte, []string) {
	t.Helper()
	resp, err := d.stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resp.TypeUrl, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, r := range resp.Resources {
		got[r.Name] = r.Resource.Value
	}
	removed := append([]string(nil), resp.RemovedResources...)
	sort.Strings(removed)
	return resp.TypeUrl, got, removed
}

// legacy is go-control-plane's snapshot cache fed what the translator builds, as the server
// did before it had a cache of its own: the reference the new path is compared with.
func legacy(t *testing.T, c cachev3.SnapshotCache, snap *registry.Snapshot, version string) {
	t.Helper()
	res, err := envoy.NewShared(snap, envoy.Options{}).Build(envoy.ParseNode(&core.Node{Id: testNode}))
	if err != nil {
		t.Fatal(err)
	}
	byType := map[resource.Type][]types.Resource{}
	for typ, list := range res {
		byType[typ] = list
	}
	s, err := cachev3.NewSnapshot(version, byType)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetSnapshot(context.Background(), testNode, s); err != nil {
		t.Fatal(err)
	}
}

func equalFetched(t *testing.T, typ string, got, want map[string][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d resources, the snapshot cache sends %d", typ, len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: %s missing", typ, name)
			continue
		}
		// Compared decoded: both are deterministic encodings, but the check should not rest
		// on that.
		if !proto.Equal(decodeAny(t, typ, g), decodeAny(t, typ, w)) {
			t.Errorf("%s: %s differs from what the snapshot cache sends", typ, name)
		}
	}
}

func decodeAny(t *testing.T, typ string, b []byte) proto.Message {
	t.Helper()
	m, err := (&anypb.Any{TypeUrl: typ, Value: b}).UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	return m
}

// TestServedLikeTheSnapshotCache is the differential check of the group cache: a client of
// each protocol gets, from the server, exactly the resources go-control-plane's snapshot cache
// sends for the same translation, first in full and then, on Delta, after one change.
func TestServedLikeTheSnapshotCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := scaleSnapshot(t, dir, 30, 0, 1), scaleSnapshot(t, dir, 30, 1, 2)
	old := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	legacy(t, old, first, "1")
	oldCC := serve(t, old)
	s := New(context.Background(), Config{})
	if err := s.Update(first); err != nil {
		t.Fatal(err)
	}
	newCC := startServer(t, s)
	all := []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

	t.Run("State of the World clients get the same resources", func(t *testing.T) {
		want, got := sotwFetch(t, oldCC, all...), sotwFetch(t, newCC, all...)
		for _, typ := range all {
			equalFetched(t, typ, got[typ], want[typ])
		}
	})

	t.Run("Delta clients get the same resources, then the same single change", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		oldD := openDelta(t, ctx, oldCC, resource.ClusterType, resource.EndpointType)
		newD := openDelta(t, ctx, newCC, resource.ClusterType, resource.EndpointType)
		want, got := fetched{}, fetched{}
		for range 2 {
			typ, res, _ := oldD.next(t)
			want[typ] = res
			typ, res, _ = newD.next(t)
			got[typ] = res
		}
		for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
			equalFetched(t, typ, got[typ], want[typ])
		}
		legacy(t, old, second, "2")
		if err := s.Update(second); err != nil {
			t.Fatal(err)
		}
		wantTyp, wantRes, wantGone := oldD.next(t)
		gotTyp, gotRes, gotGone := newD.next(t)
		if gotTyp != wantTyp || fmt.Sprint(gotGone) != fmt.Sprint(wantGone) {
			t.Errorf("push after the change: %s removing %v, the snapshot cache sends %s removing %v", gotTyp, gotGone, wantTyp, wantGone)
		}
		equalFetched(t, gotTyp, gotRes, wantRes)
	})
}

// serveTen starts a server on a snapshot of 10 entries written under dir, and a client
// connection to it.
func serveTen(t *testing.T, dir string) (*Server, *grpc.ClientConn) {
	t.Helper()
	s := New(context.Background(), Config{})
	if err := s.Update(scaleSnapshot(t, dir, 10, 0, 1)); err != nil {
		t.Fatal(err)
	}
	return s, startServer(t, s)
}

func startServer(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close(); g.Stop() })
	return cc
}

// TestSotWClientsOfUnchangedTypesAreNotWoken holds a State of the World client on clusters and
// endpoints and changes one endpoint: the client gets the new endpoints and nothing for
// clusters, whose version did not change.
func TestSotWClientsOfUnchangedTypesAreNotWoken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, cc := serveTen(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: testNode}
	for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		ack := &discovery.DiscoveryRequest{TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}
		if err := stream.Send(ack); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(scaleSnapshot(t, dir, 10, 1, 2)); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- resp.TypeUrl
		}
	}()
	if typ := <-got; typ != resource.EndpointType {
		t.Fatalf("the push after an endpoint change was %s", typ)
	}
	select {
	case typ, ok := <-got:
		if ok {
			t.Fatalf("a second push, of %s, followed the endpoint change", typ)
		}
	case <-time.After(time.Second):
	}
}
