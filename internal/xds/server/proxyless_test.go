package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// namedBackend is a real gRPC server that says its name in a response header.
type namedBackend struct {
	healthpb.UnimplementedHealthServer
	name string
	addr string
	srv  *grpc.Server
}

func (b *namedBackend) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("backend", b.name))
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func startBackend(t *testing.T, name string) *namedBackend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &namedBackend{name: name, addr: lis.Addr().String(), srv: grpc.NewServer()}
	healthpb.RegisterHealthServer(b.srv, b)
	go func() { _ = b.srv.Serve(lis) }()
	t.Cleanup(b.srv.Stop)
	return b
}

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// compileYAML compiles one YAML file as meshentry loads configuration.
func compileYAML(t *testing.T, yaml string, version uint64) *registry.Snapshot {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load([]string{path}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := compile.Documents(loaded, version)
	if res.Errors() > 0 {
		t.Fatalf("config does not validate: %v", res.Diagnostics)
	}
	return res.Snapshot
}

// entry declares grpc.example:50051 with endpoints "name@locality*weight=addr".
func entry(eps ...string) string {
	var b strings.Builder
	b.WriteString(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: greeter, namespace: default}
spec:
  hosts: [grpc.example]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 50051, name: grpc, protocol: GRPC}]
  endpoints:
`)
	for _, e := range eps {
		var loc, addr string
		var w int
		fmt.Sscanf(strings.NewReplacer("*", " ", "=", " ").Replace(e), "%s %d %s", &loc, &w, &addr)
		fmt.Fprintf(&b, "  - {address: 127.0.0.1, ports: {grpc: %s}, locality: %s, weight: %d}\n", port(addr), loc, w)
	}
	return b.String()
}

// startXDS serves s on loopback and returns a client connection to xds:///grpc.example:50051
// through grpc-go's own xDS resolver, with a bootstrap naming the node as a proxyless client.
func startXDS(t *testing.T, s *Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	bootstrap := fmt.Sprintf(`{"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "sidecar~127.0.0.1~client.default~default.svc.cluster.local",
			"metadata": {"GENERATOR": "grpc", "NAMESPACE": "default"},
			"locality": {"region": "r1", "zone": "z1", "sub_zone": "s1"}}}`, lis.Addr().String())
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///grpc.example:50051", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// call makes one RPC and returns the backend's name, or "" on failure.
func call(cc *grpc.ClientConn) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var md metadata.MD
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md)); err != nil {
		return ""
	}
	if v := md.Get("backend"); len(v) == 1 {
		return v[0]
	}
	return ""
}

// until calls until one reaches want, and returns how long that took.
func until(t *testing.T, cc *grpc.ClientConn, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if call(cc) == want {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no call reached %s within %v", want, limit)
	return 0
}

// TestProxylessGRPC drives grpc-go's xDS client against the server: weights, a config change,
// locality failover and a NACK, each as a real RPC to real backends on loopback.
func TestProxylessGRPC(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	remote, fresh := startBackend(t, "remote"), startBackend(t, "fresh")
	var poison atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(ctx, Config{Extra: func(*registry.Snapshot) map[string][]types.Resource {
		if !poison.Load() {
			return nil
		}
		// grpc-go takes EDS, LOGICAL_DNS and aggregate clusters only: a STATIC one is NACKed.
		return map[string][]types.Resource{resource.ClusterType: {&cluster.Cluster{Name: "outbound|50051||grpc.example",
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC}}}}
	}})
	base := []string{"r1/z1/s1*1=" + a.addr, "r1/z1/s1*3=" + b.addr, "r2/z2/s2*1=" + remote.addr}
	if err := s.Update(compileYAML(t, entry(base...), 1)); err != nil {
		t.Fatal(err)
	}
	cc := startXDS(t, s)
	until(t, cc, "b", 5*time.Second)

	t.Run("calls split 1:3 by endpoint weight within 5 points over 2000 calls", func(t *testing.T) {
		// Sixteen callers at once keep the 2,000 calls to a few seconds under -race.
		results := make(chan string, 2000)
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 125 {
					results <- call(cc)
				}
			})
		}
		wg.Wait()
		close(results)
		counts := map[string]int{}
		for r := range results {
			counts[r]++
		}
		share := float64(counts["b"]) / float64(counts["a"]+counts["b"])
		t.Logf("counts %v, b's share %.3f", counts, share)
		if counts["a"]+counts["b"] != 2000 || share < 0.70 || share > 0.80 {
			t.Fatalf("counts %v: b's share %.3f, want 0.75±0.05 and every call to the local locality", counts, share)
		}
	})
	t.Run("a new endpoint is followed within a second of the config change", func(t *testing.T) {
		start := time.Now()
		if err := s.Update(compileYAML(t, entry("r1/z1/s1*1="+fresh.addr, "r2/z2/s2*1="+remote.addr), 2)); err != nil {
			t.Fatal(err)
		}
		until(t, cc, "fresh", 5*time.Second)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("the change took %v to reach the client, want under 1s", took)
		}
		t.Logf("followed in %v", time.Since(start))
	})
	t.Run("calls fail over to the remote locality when the local endpoints stop", func(t *testing.T) {
		fresh.srv.Stop()
		took := until(t, cc, "remote", 10*time.Second)
		for range 20 {
			if got := call(cc); got != "remote" {
				t.Fatalf("after failover a call reached %q, want remote", got)
			}
		}
		t.Logf("failed over in %v", took)
	})
	t.Run("a cluster the client rejects shows as NACK in the status", func(t *testing.T) {
		poison.Store(true)
		if err := s.Update(compileYAML(t, entry("r2/z2/s2*1="+remote.addr), 3)); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			for _, ps := range s.Status() {
				for _, ts := range ps.Types {
					if ts.TypeURL == resource.ClusterType && ts.Status == "NACK" {
						t.Logf("%s %s: %s", ps.Name, ts.Status, ts.Error)
						if ps.Name != "client.default" {
							t.Fatalf("the NACK names %q, want client.default", ps.Name)
						}
						return
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no NACK reported: %+v", s.Status())
	})
}
