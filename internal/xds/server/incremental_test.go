package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestDeltaPushCarriesOnlyTheChange connects Delta ADS clients and changes one ServiceEntry's
// endpoints: the push names that load assignment only, and the other types keep their version.
func TestDeltaPushCarriesOnlyTheChange(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	s := New(ctx, Config{})
	if err := s.Update(scaleSnapshot(t, dir, 20, 0, 1)); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := newDeltaClient(ctx, t, cc, 1)
	seen := map[string]int{}
	deadline := time.After(5 * time.Second)
	for seen[resource.ClusterType] < 20 || seen[resource.EndpointType] < 20 {
		select {
		case p := <-c.got:
			seen[p.typ] += p.n
		case <-deadline:
			t.Fatalf("first push: %v of 20 clusters and endpoints", seen)
		}
	}
	before := s.versions(t)
	if err := s.Update(scaleSnapshot(t, dir, 20, 1, 2)); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-c.got:
		want := pushed{typ: resource.EndpointType, n: 1, first: "outbound|80||svc-0.example.com"}
		if p != want {
			t.Fatalf("the push after one change carried %+v, want only %+v", p, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no push after the change")
	}
	after := s.versions(t)
	for typ, v := range before {
		if changed := after[typ] != v; changed != (typ == resource.EndpointType) {
			t.Errorf("%s version %s -> %s: only endpoints should change", typ, v, after[typ])
		}
	}
}

// versions returns the per-type versions of the one group of nodes.
func (s *Server) versions(t *testing.T) map[string]string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.groups) != 1 {
		t.Fatalf("%d groups, want 1", len(s.groups))
	}
	for _, g := range s.groups {
		out := map[string]string{}
		for k, v := range g.versions {
			out[k] = v
		}
		return out
	}
	return nil
}
