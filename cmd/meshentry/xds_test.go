package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

const xdsEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: NAME, namespace: default}
spec:
  hosts: [NAME.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
`

// startXDSCommand runs `meshentry xds` on a :0 port over dir and returns its address.
func startXDSCommand(t *testing.T, dir string) string {
	addr, _ := startXDSCommandWith(t, dir)
	return addr
}

// startXDSCommandWith is startXDSCommand with more flags; it also returns the /metrics address.
func startXDSCommandWith(t *testing.T, dir string, args ...string) (addr, monitoring string) {
	t.Helper()
	f := new(xdsFlags)
	cmd := newXDSCommandFor(f)
	args = append([]string{"--listen", "127.0.0.1:0", "--monitoring", "127.0.0.1:0", "-f", dir, "--reload-debounce", "20ms"}, args...)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	monc := make(chan net.Addr, 1)
	f.monitoringReady = func(a net.Addr) { monc <- a }
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runXDS(ctx, cmd, f, func(a net.Addr) { addrc <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("xds: %v", err)
		}
	})
	select {
	case a := <-addrc:
		return a.String(), (<-monc).String()
	case err := <-done:
		t.Fatalf("xds exited: %v\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("xds did not start")
	}
	return "", ""
}

// adsClusters opens an ADS stream as an Envoy sidecar and returns a function that waits for the
// next CDS response and ACKs it.
func adsClusters(t *testing.T, addr string) func() []string {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &core.Node{Id: "sidecar~10.0.0.1~app.default~default.svc.cluster.local"}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	return func() []string {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("ADS: %v", err)
		}
		var names []string
		for _, a := range resp.Resources {
			c := &cluster.Cluster{}
			if err := a.UnmarshalTo(c); err != nil {
				t.Fatal(err)
			}
			names = append(names, c.Name)
		}
		if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}); err != nil {
			t.Fatal(err)
		}
		return names
	}
}

func TestXDSCommandPushesAReloadAndReportsStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(strings.ReplaceAll(xdsEntry, "NAME", name)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first")
	addr := startXDSCommand(t, dir)
	next := adsClusters(t, addr)
	t.Run("a sidecar gets the ServiceEntry's cluster on its first request", func(t *testing.T) {
		if got := strings.Join(next(), " "); !strings.Contains(got, "outbound|443||first.example.com") {
			t.Fatalf("clusters %s, want outbound|443||first.example.com", got)
		}
	})
	t.Run("proxy-status lists the sidecar as SYNCED for CDS", func(t *testing.T) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var out bytes.Buffer
			if code := run([]string{"proxy-status", "--xds", addr, "-o", "json"}, nil, &out, &out); code != 0 {
				t.Fatalf("proxy-status exit %d: %s", code, out.String())
			}
			var list []proxyStatus
			if err := json.Unmarshal(out.Bytes(), &list); err != nil {
				t.Fatal(err)
			}
			if len(list) == 1 && list[0].Name == "app.default" && list[0].Types["CDS"].Status == "SYNCED" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("proxy-status: %s", out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("a ServiceEntry added to the folder is pushed", func(t *testing.T) {
		write("second")
		got := strings.Join(next(), " ")
		if !strings.Contains(got, "outbound|443||second.example.com") || !strings.Contains(got, "outbound|443||first.example.com") {
			t.Fatalf("clusters after the change %s, want first and second", got)
		}
	})
}

func TestBootstrapPointsEnvoyAtTheServer(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := run([]string{"bootstrap", "--xds", "127.0.0.1:15010", "--node-id", "sidecar~10.0.0.1~web.shop~shop.svc.cluster.local"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	b := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(out.Bytes(), b); err != nil {
		t.Fatalf("not a bootstrap: %v\n%s", err, out.String())
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatal(err)
	}
	if ns := b.Node.Metadata.Fields["NAMESPACE"].GetStringValue(); ns != "shop" || b.Node.Cluster != "web.shop" {
		t.Fatalf("node %v: want namespace shop from the node id", b.Node)
	}
	if b.DynamicResources.GetAdsConfig() == nil || b.DynamicResources.CdsConfig.GetAds() == nil {
		t.Fatalf("dynamic resources %v: want CDS and LDS over ADS", b.DynamicResources)
	}
}
