package mcp

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cache "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	server "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// serve runs go-control-plane's ADS server over c on a loopback port until the test ends.
func serve(t *testing.T, c *Cache) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gs := grpc.NewServer()
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, server.NewServer(ctx, c, nil))
	go gs.Serve(ln)
	t.Cleanup(func() { cancel(); gs.Stop() })
	return ln.Addr().String()
}

// rawStream is an ADS stream with one goroutine receiving, so that a wait that times out loses
// no response to the next one.
type rawStream struct {
	discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	in chan *discovery.DiscoveryResponse
}

// adsStream opens a raw ADS stream to addr.
func adsStream(t *testing.T, addr string) *rawStream {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs := &rawStream{s, make(chan *discovery.DiscoveryResponse, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := s.Recv()
			if err != nil {
				return
			}
			rs.in <- r
		}
	}()
	t.Cleanup(func() { cancel(); <-done; conn.Close() })
	return rs
}

// recvWithin returns the next response, or nil when none comes within d.
func recvWithin(t *testing.T, s *rawStream, d time.Duration) *discovery.DiscoveryResponse {
	t.Helper()
	select {
	case r := <-s.in:
		return r
	case <-time.After(d):
		return nil
	}
}

func TestCacheWakesOnlyForChangedCollections(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first, so run after the others
	c := NewCache()
	if err := c.Set(snapshotOf(t, fiveKinds)); err != nil {
		t.Fatal(err)
	}
	s := adsStream(t, serve(t, c))
	if err := s.Send(&discovery.DiscoveryRequest{TypeUrl: ServiceEntryType}); err != nil {
		t.Fatal(err)
	}
	first := recvWithin(t, s, 5*time.Second)
	if first == nil || len(first.GetResources()) != 1 || first.GetVersionInfo() != c.Version(ServiceEntryType) {
		t.Fatalf("first response %v, want the one ServiceEntry at version %s", first, c.Version(ServiceEntryType))
	}
	ack := &discovery.DiscoveryRequest{TypeUrl: ServiceEntryType, VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()}
	if err := s.Send(ack); err != nil {
		t.Fatal(err)
	}
	t.Run("sends nothing when the same documents are set again", func(t *testing.T) {
		if err := c.Set(snapshotOf(t, fiveKinds)); err != nil {
			t.Fatal(err)
		}
		if r := recvWithin(t, s, 300*time.Millisecond); r != nil {
			t.Fatalf("woken for nothing: %v", r)
		}
	})
	var second *discovery.DiscoveryResponse
	t.Run("sends the whole collection when a document changes", func(t *testing.T) {
		edited := strings.Replace(fiveKinds, "address: 127.0.0.1", "address: 127.0.0.2", 1) + `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: more, namespace: shop}
spec: {hosts: [more.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}
`
		if err := c.Set(snapshotOf(t, edited)); err != nil {
			t.Fatal(err)
		}
		second = recvWithin(t, s, 5*time.Second)
		if second == nil || len(second.GetResources()) != 2 || second.GetVersionInfo() == first.GetVersionInfo() {
			t.Fatalf("response %v, want both ServiceEntries at a new version", second)
		}
	})
	t.Run("does not send the refused content again after a NACK", func(t *testing.T) {
		if second == nil {
			t.Skip("no second response")
		}
		nack := &discovery.DiscoveryRequest{TypeUrl: ServiceEntryType, VersionInfo: first.GetVersionInfo(),
			ResponseNonce: second.GetNonce(), ErrorDetail: &status.Status{Code: 3, Message: "bad"}}
		if err := s.Send(nack); err != nil {
			t.Fatal(err)
		}
		if r := recvWithin(t, s, 300*time.Millisecond); r != nil {
			t.Fatalf("refused content sent again: %v", r)
		}
	})
}

func TestCacheRefusesWhatItDoesNotServe(t *testing.T) {
	t.Parallel()
	c := NewCache()
	for _, tc := range []struct {
		name    string
		typeURL string
	}{
		{name: "refuses an Envoy type", typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
		{name: "refuses an Istio kind meshentry does not read", typeURL: "security.istio.io/v1beta1/AuthorizationPolicy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.CreateWatch(&discovery.DiscoveryRequest{TypeUrl: tc.typeURL}, nil, make(chan cacheResponse, 1)); err == nil {
				t.Error("watch created")
			}
			if err := c.SetResources(map[string][]resourceT{tc.typeURL: nil}); err == nil {
				t.Error("resources set")
			}
		})
	}
}

type (
	cacheResponse = cache.Response
	resourceT     = types.Resource
)

func TestMuxSendsEachTypeToItsCache(t *testing.T) {
	t.Parallel()
	m := NewCache()
	if err := m.Set(snapshotOf(t, fiveKinds)); err != nil {
		t.Fatal(err)
	}
	envoy := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	mux := Mux(envoy, m)
	for _, tc := range []struct {
		name    string
		typeURL string
		mcp     bool
	}{
		{name: "answers a ServiceEntry request from the MCP cache", typeURL: ServiceEntryType, mcp: true},
		{name: "hands a Cluster request to the Envoy cache", typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make(chan cache.Response, 1)
			cancel, err := mux.CreateWatch(&discovery.DiscoveryRequest{TypeUrl: tc.typeURL, Node: &corev3.Node{Id: "n"}}, stream.NewSotwSubscription(nil, true), out)
			if err != nil {
				t.Fatal(err)
			}
			defer cancel()
			select {
			case r := <-out:
				if !tc.mcp {
					t.Fatalf("the empty Envoy cache answered: %v", r)
				}
			case <-time.After(200 * time.Millisecond):
				if tc.mcp {
					t.Fatal("the MCP cache did not answer a first request")
				}
			}
		})
	}
}
