package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestXDSMonitoringCountsNodesAndRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(strings.ReplaceAll(xdsEntry, "NAME", "a")), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, monitoring := startXDSCommandWith(t, dir, "--xds-max-nodes", "1")
	first := openADS(t, addr, "sidecar~10.0.0.1~one.default~default.svc.cluster.local")
	if _, err := first.Recv(); err != nil {
		t.Fatalf("the first node: %v", err)
	}
	t.Run("pilot_xds counts the connected node", func(t *testing.T) {
		waitMetric(t, monitoring, "pilot_xds 1")
	})
	t.Run("a node beyond --xds-max-nodes is refused and counted", func(t *testing.T) {
		second := openADS(t, addr, "sidecar~10.0.0.2~two.default~default.svc.cluster.local")
		if _, err := second.Recv(); err == nil {
			t.Fatal("the second node got a response past --xds-max-nodes 1")
		}
		waitMetric(t, monitoring, "meshentry_xds_server_nodes_refused_total 1")
		waitMetric(t, monitoring, "meshentry_xds_server_unacked_bytes_limit 3.3554432e+07")
	})
}

// openADS opens an ADS stream as node id and asks for its clusters.
func openADS(t *testing.T, addr, id string) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: id}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	return stream
}

// waitMetric scrapes /metrics until a line reads want.
func waitMetric(t *testing.T, addr, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		for _, line := range strings.Split(body, "\n") {
			if line == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line %q in /metrics:\n%s", want, body)
}
