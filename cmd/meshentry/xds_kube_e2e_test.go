package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/kubeapi"
)

// startKubeXDS runs `meshentry xds --kube` in-process against the test's API server and returns
// its address.
func startKubeXDS(t *testing.T, kubeconfig string) string {
	t.Helper()
	f := new(xdsFlags)
	cmd := newXDSCommandFor(f)
	if err := cmd.ParseFlags([]string{"--listen", "127.0.0.1:0", "--monitoring", "", "--kube", "--kubeconfig", kubeconfig, "--kube-write-status=false"}); err != nil {
		t.Fatal(err)
	}
	var log syncBuffer
	cmd.SetErr(&log)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runXDS(ctx, cmd, f, func(a net.Addr) { addrc <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("meshentry xds --kube: %v", err)
		}
		if t.Failed() {
			t.Logf("meshentry xds --kube's log:\n%s", log.String())
		}
	})
	select {
	case a := <-addrc:
		return a.String()
	case err := <-done:
		t.Fatalf("meshentry xds --kube: %v\n%s", err, log.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("meshentry xds --kube did not start within 60 s\n%s", log.String())
	}
	return ""
}

// TestXDSKubeServesTheClustersObjectsToItsProxies is not parallel: it shares the package's API
// server, which TestRunKube restarts. Objects applied with kubectl reach a proxy that takes its
// config from `meshentry xds --kube`, and a kubectl edit follows them there.
func TestXDSKubeServesTheClustersObjectsToItsProxies(t *testing.T) {
	srv := sharedKube(t)
	ctx := context.Background()
	a := backend.HTTP(t, "kube-a", "127.0.0.1:0")
	b := backend.HTTP(t, "kube-b", "127.0.0.1:0")
	const host = "xds-kube.example.com"
	apply := func(port int) {
		t.Helper()
		if _, err := srv.Kubectl(ctx, kubeServiceEntry("default", "xds-kube", host, port), nil, "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
	}
	apply(a.Port())
	t.Cleanup(func() { srv.Kubectl(ctx, "", nil, "delete", "-n", "default", "serviceentry", "xds-kube") })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(srv.KubeconfigFor("admin", kubeapi.Token)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startKubeXDS(t, kubeconfig)
	bound := startRunArgs(t, "--config-source", "xds://"+addr, "--listen", "127.0.0.1:0", "--admin", "",
		"--xds-node-id", "sidecar~127.0.0.9~vm.default~default.svc.cluster.local", "--xds-initial-fetch-timeout", "5s",
		"--xds-backoff-base", "50ms", "--xds-backoff-max", "500ms")
	proxies := []net.Addr{bound["forward proxy"]}
	took := untilServedByAll(t, proxies, host, "kube-a", 10*time.Second)
	t.Logf("what kubectl applied serves through the xds-fed proxy %v after it started", took.Round(time.Millisecond))
	apply(b.Port())
	took = untilServedByAll(t, proxies, host, "kube-b", 10*time.Second)
	t.Logf("a kubectl apply moving the endpoint reached the proxy through meshentry xds in %v", took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Errorf("the change took %v to reach the proxy, want within 3 s", took)
	}
}
