package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/kubeapi"
)

// The package's one API server, started by the first test that needs it and stopped by TestMain.
var (
	kubeOnce   sync.Once
	kubeServer *kubeapi.Server
	kubeErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if kubeServer != nil {
		kubeServer.Stop()
		os.RemoveAll(kubeServer.Dir)
	}
	os.Exit(code)
}

// sharedKube returns the package's API server, starting it on first use.
func sharedKube(t *testing.T) *kubeapi.Server {
	t.Helper()
	kubeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "meshentry-kubeapi-")
		if err != nil {
			kubeErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		kubeServer, kubeErr = kubeapi.Start(ctx, dir)
	})
	if kubeErr != nil {
		t.Fatalf("kube-apiserver and etcd: %v", kubeErr)
	}
	return kubeServer
}

// kubeServiceEntry is a v1beta1 ServiceEntry (the API server serves it as v1 too) for host,
// routed to a backend on 127.0.0.1:port.
func kubeServiceEntry(ns, name, host string, port int) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: %s, namespace: %s}
spec:
  hosts: [%s]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
`, name, ns, host, port)
}

// backendOf fetches u through c and returns the X-Backend that answered, "" on any failure.
func backendOf(c *http.Client, u string) string {
	resp, err := c.Get(u)
	if err != nil {
		return ""
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("X-Backend")
}

// kubeRunFor starts `run --kube` with kubeconfig, watching all namespaces, for a workload in ns,
// with no -f; admin is its admin API's address.
func kubeRunFor(t *testing.T, kubeconfig, ns string) (c *http.Client, log *syncBuffer, admin net.Addr) {
	t.Helper()
	cmd := newRunCommand()
	cmd.SetOut(io.Discard)
	log = &syncBuffer{}
	cmd.SetErr(log)
	f := &runFlags{src: sourceFlags{namespace: ns}, limits: defaultLimits(), listen: "127.0.0.1:0",
		policy: "REGISTRY_ONLY", logLevel: "info", adminAddr: "127.0.0.1:0",
		kube: kubeFlags{enabled: true, kubeconfig: kubeconfig, writeStatus: true,
			statusQPS: 50, statusBurst: 50, qps: 50, burst: 100, syncTimeout: time.Minute, debounce: 50 * time.Millisecond}}
	bound, err := launchRun(t, cmd, f, log)
	if err != nil {
		t.Fatalf("run --kube returned before serving: %v\n%s", err, log)
	}
	u := &url.URL{Scheme: "http", Host: bound["forward proxy"].String()}
	c = &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
	return c, log, bound["admin"]
}

// trafficLoop sends requests to u until stop is called, counting the answers from each backend
// and the failures; stop returns those counts.
func trafficLoop(c *http.Client, u string) (stop func() (byBackend map[string]int, failed int)) {
	var mu sync.Mutex
	counts := map[string]int{}
	var failures atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			b := backendOf(c, u)
			mu.Lock()
			if b == "" {
				failures.Add(1)
			} else {
				counts[b]++
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	})
	return func() (map[string]int, int) {
		close(done)
		wg.Wait()
		return counts, int(failures.Load())
	}
}

// TestRunKube is not parallel: one subtest restarts the package's API server.
func TestRunKube(t *testing.T) {
	srv := sharedKube(t)
	ctx := context.Background()
	const ns = "default"
	a := backend.HTTP(t, "a", "127.0.0.1:0")
	b := backend.HTTP(t, "b", "127.0.0.1:0")
	if out, err := srv.Kubectl(ctx, kubeServiceEntry(ns, "api", "api.example.com", a.Port()), nil, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("kubectl apply: %s", strings.TrimSpace(out))
	}
	// The reference examples name these namespaces.
	var nss strings.Builder
	for _, name := range []string{"egress", "istio-system", "httpbin-ns"} {
		fmt.Fprintf(&nss, "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n---\n", name)
	}
	if _, err := srv.Kubectl(ctx, nss.String(), nil, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if out, err := srv.Kubectl(ctx, "", nil, "apply", "-f", "../../testdata/validate/examples"); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("kubectl apply of the reference examples:\n%s", out)
	}
	// meshentry runs as a user that has only what `meshentry kube rbac` grants.
	var rbac strings.Builder
	if code := run([]string{"kube", "rbac", "--user", "meshentry-user"}, strings.NewReader(""), &rbac, io.Discard); code != 0 {
		t.Fatalf("kube rbac exited %d", code)
	}
	if _, err := srv.Kubectl(ctx, rbac.String(), nil, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	userConfig := t.TempDir() + "/kubeconfig"
	if err := os.WriteFile(userConfig, []byte(srv.KubeconfigFor("meshentry-user", kubeapi.UserToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	c, log, admin := kubeRunFor(t, userConfig, ns)
	const u = "http://api.example.com/"

	t.Run("routes what kubectl applied", func(t *testing.T) {
		if got := backendOf(c, u); got != "a" {
			t.Fatalf("answered by %q, want a\n%s", got, log)
		}
		// The examples' valid ServiceEntries (all but 07) are in the first snapshot too.
		m := regexp.MustCompile(`msg="kube config listed".* services=(\d+)`).FindStringSubmatch(log.String())
		if n, _ := strconv.Atoi(append(m, "", "")[1]); n < 5 {
			t.Errorf("the first snapshot lacks the examples' services:\n%s", log)
		}
	})
	t.Run("a kubectl edit moving the endpoint moves traffic within a second with no failed request", func(t *testing.T) {
		stop := trafficLoop(c, u)
		editor := fmt.Sprintf("sed -i s/http:\\ %d/http:\\ %d/", a.Port(), b.Port())
		if _, err := srv.Kubectl(ctx, "", []string{"KUBE_EDITOR=" + editor}, "edit", "-n", ns, "serviceentry", "api"); err != nil {
			stop()
			t.Fatal(err)
		}
		edited := time.Now()
		pollUntil(t, "traffic reaches b", func() bool { return backendOf(c, u) == "b" })
		took := time.Since(edited)
		counts, failed := stop()
		t.Logf("traffic moved %v after kubectl edit returned; answers %v, failures %d", took.Round(time.Millisecond), counts, failed)
		if failed > 0 {
			t.Errorf("%d requests failed during the edit", failed)
		}
		// The issue asks for 1 s; the margin is for a loaded 2-core CI machine.
		if took > 3*time.Second {
			t.Errorf("traffic moved after %v", took)
		}
	})
	t.Run("an object the API server accepts but meshentry rejects gets validation messages in its status", func(t *testing.T) {
		var out string
		pollUntil(t, "external-svc-dns has validationMessages", func() bool {
			var err error
			out, err = srv.Kubectl(ctx, "", nil, "get", "-n", ns, "serviceentry", "external-svc-dns", "-o", "yaml")
			return err == nil && strings.Contains(out, "validationMessages")
		})
		status := out[strings.Index(out, "\nstatus:"):]
		t.Logf("kubectl get serviceentry external-svc-dns -o yaml:%s", status)
		for _, want := range []string{"level: ERROR", "code: ME10", "observedGeneration: 1"} {
			if !strings.Contains(status, want) {
				t.Errorf("status lacks %q", want)
			}
		}
		_, metrics := adminGet(t, "GET", admin, "/stats/prometheus")
		written := regexp.MustCompile(`meshentry_kube_status_writes_total\{result="written"\} (\d+)`).FindStringSubmatch(metrics)
		if n, _ := strconv.Atoi(append(written, "", "")[1]); n < 1 {
			t.Errorf("meshentry_kube_status_writes_total{result=\"written\"} is %v after a status was written:\n%s", written, metrics)
		}
	})
	t.Run("the API server killed and restarted: traffic never stops, and a change made while meshentry was disconnected is picked up", func(t *testing.T) {
		began := time.Now()
		stop := trafficLoop(c, u)
		srv.StopAPIServer()
		// The change goes in through a second API server on another port against the same etcd:
		// meshentry knows only the stopped one, so it is disconnected when the change is made.
		side, stopSide, err := srv.StartSideAPIServer(ctx)
		if err != nil {
			stop()
			t.Fatal(err)
		}
		if _, err := side(ctx, kubeServiceEntry(ns, "api", "api.example.com", a.Port()), nil, "apply", "-f", "-"); err != nil {
			stopSide()
			stop()
			t.Fatal(err)
		}
		stopSide()
		// Still serving the last snapshot it had: the change cannot have reached it yet.
		if got := backendOf(c, u); got != "b" {
			stop()
			t.Fatalf("while disconnected answered by %q, want b (the snapshot from before the stop)", got)
		}
		if err := srv.StartAPIServer(ctx, ""); err != nil {
			stop()
			t.Fatal(err)
		}
		restarted := time.Now()
		// The informers retry with client-go's backoff (0.8 s doubling to 30 s), so reconnection
		// may take a while after a slow restart.
		deadline := time.Now().Add(90 * time.Second)
		for backendOf(c, u) != "a" {
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("the change made while disconnected was not picked up\n%s", log)
			}
			time.Sleep(10 * time.Millisecond)
		}
		counts, failed := stop()
		t.Logf("change picked up %v after the API server came back (%v in all); answers %v, failures %d",
			time.Since(restarted).Round(time.Millisecond), time.Since(began).Round(time.Millisecond), counts, failed)
		if failed > 0 {
			t.Errorf("%d requests failed across the restart", failed)
		}
	})
	t.Run("kubectl delete removes the service", func(t *testing.T) {
		if _, err := srv.Kubectl(ctx, "", nil, "delete", "-n", ns, "serviceentry", "api"); err != nil {
			t.Fatal(err)
		}
		pollUntil(t, "the host is refused", func() bool { return status(c, u) == http.StatusBadGateway })
	})
}
