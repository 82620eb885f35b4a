package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/xds/mcp"
)

// folderServer is a real `meshentry xds -f DIR` in this process, which the test may stop and
// start again on the same port.
type folderServer struct {
	t     *testing.T
	dir   string
	addr  string
	mu    sync.Mutex
	close func()
	log   bytes.Buffer
}

func startFolderServer(t *testing.T, dir string) *folderServer {
	s := &folderServer{t: t, dir: dir, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("meshentry xds's log:\n%s", s.log.String())
		}
	})
	return s
}

func (s *folderServer) start() {
	s.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		err := s.try()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("meshentry xds on %s: %v\n%s", s.addr, err, s.log.String())
		}
	}
}

// try runs `meshentry xds` once; the port of a stopped server may take a moment to be free.
func (s *folderServer) try() error {
	f := new(xdsFlags)
	cmd := newXDSCommandFor(f)
	if err := cmd.ParseFlags([]string{"--listen", s.addr, "--monitoring", "", "-f", s.dir, "--reload-debounce", "20ms"}); err != nil {
		s.t.Fatal(err)
	}
	cmd.SetErr(&s.log)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runXDS(ctx, cmd, f, func(a net.Addr) { addrc <- a }) }()
	select {
	case a := <-addrc:
		s.mu.Lock()
		s.addr = a.String()
		s.close = func() {
			cancel()
			if err := <-done; err != nil {
				s.t.Errorf("meshentry xds: %v", err)
			}
		}
		s.mu.Unlock()
		return nil
	case err := <-done:
		cancel()
		return err
	case <-time.After(10 * time.Second):
		cancel()
		s.t.Fatal("meshentry xds did not start within 10 s")
		return nil
	}
}

func (s *folderServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.close != nil {
		s.close()
		s.close = nil
	}
}

// writeServiceEntry declares host on the backend's port in a file of its own in dir.
func writeServiceEntry(t *testing.T, dir, host string, port int) {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %[1]s, namespace: default}
spec:
  hosts: [%[1]s]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %[2]d}}]
`, host, port)
	tmp := filepath.Join(dir, "."+host+".tmp")
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, host+".yaml")); err != nil {
		t.Fatal(err)
	}
}

// served reports whether GET http://HOST/ through the forward proxy at proxyAddr reaches want.
func served(proxyAddr net.Addr, host, want string) bool {
	u := &url.URL{Scheme: "http", Host: proxyAddr.String()}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}}
	resp, err := c.Get("http://" + host + "/")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.HasPrefix(string(b), want+" ")
}

// untilServedByAll polls until every proxy serves host from want, and returns how long it took.
func untilServedByAll(t *testing.T, proxies []net.Addr, host, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for _, p := range proxies {
		for !served(p, host, want) {
			if time.Since(start) > limit {
				t.Fatalf("%s not served by %s from %s within %v", host, p, want, limit)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return time.Since(start)
}

// TestFleetFollowsOneXDSServer is the fleet Must-show: two `meshentry run --config-source
// xds://…` behind one `meshentry xds -f DIR`.
func TestFleetFollowsOneXDSServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := backend.HTTP(t, "backend-a", "127.0.0.1:0")
	b := backend.HTTP(t, "backend-b", "127.0.0.1:0")
	srv := startFolderServer(t, dir)
	var proxies []net.Addr
	for i := range 2 {
		bound := startRunArgs(t, "--config-source", "xds://"+srv.addr, "--listen", "127.0.0.1:0", "--admin", "",
			"--xds-node-id", fmt.Sprintf("sidecar~127.0.0.%d~vm%d.default~default.svc.cluster.local", i+1, i+1),
			"--xds-initial-fetch-timeout", "5s", "--xds-backoff-base", "50ms", "--xds-backoff-max", "500ms")
		proxies = append(proxies, bound["forward proxy"])
	}
	t.Run("a ServiceEntry added to the server's folder serves through both proxies within 1 s", func(t *testing.T) {
		writeServiceEntry(t, dir, "a.example.com", a.Port())
		took := untilServedByAll(t, proxies, "a.example.com", "backend-a", 3*time.Second)
		t.Logf("served by both proxies %v after the file was written", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("took %v, want within 1 s", took)
		}
	})
	t.Run("proxy-status lists both proxies with their collections SYNCED", func(t *testing.T) {
		var list []proxyStatus
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			var err error
			if list, err = fetchProxyStatus(context.Background(), srv.addr); err != nil {
				t.Fatal(err)
			}
			synced := 0
			for _, ps := range list {
				if ps.Types[mcp.ServiceEntryType].Status == "SYNCED" {
					synced++
				}
			}
			if synced == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("proxy-status after 5 s: %+v", list)
			}
		}
		var out strings.Builder
		if err := writeProxyStatus(&out, list); err != nil {
			t.Fatal(err)
		}
		t.Logf("proxy-status:\n%s", out.String())
	})
	t.Run("with the server stopped, both keep serving the last config", func(t *testing.T) {
		srv.stop()
		time.Sleep(200 * time.Millisecond) // let both streams notice, so this tests the loss, not its absence
		untilServedByAll(t, proxies, "a.example.com", "backend-a", 3*time.Second)
	})
	t.Run("a change made while the server was away reaches both when it returns", func(t *testing.T) {
		writeServiceEntry(t, dir, "b.example.com", b.Port())
		srv.start()
		took := untilServedByAll(t, proxies, "b.example.com", "backend-b", 5*time.Second)
		t.Logf("served by both proxies %v after the server returned", took.Round(time.Millisecond))
		untilServedByAll(t, proxies, "a.example.com", "backend-a", 3*time.Second)
	})
}

func TestConfigSourceFlagsRefuseNonsense(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "refuses -f beside --config-source", args: []string{"--config-source", "xds://127.0.0.1:1", "-f", "x.yaml"}, want: "exclude each other"},
		{name: "refuses a scheme other than xds and xdss", args: []string{"--config-source", "http://127.0.0.1:1"}, want: "want xds://HOST:PORT"},
		{name: "refuses an address without a port", args: []string{"--config-source", "xds://127.0.0.1"}, want: "want xds://HOST:PORT"},
		{name: "refuses a back-off cap below its base", args: []string{"--config-source", "xds://127.0.0.1:1", "--xds-backoff-base", "2s", "--xds-backoff-max", "1s"}, want: "at least the base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := new(runFlags)
			cmd := newRunCommandFor(f)
			if err := cmd.ParseFlags(tc.args); err != nil {
				t.Fatal(err)
			}
			_, _, err := loadConfigSource(context.Background(), cmd, f, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}
