package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/admin"
	"github.com/meshentry/meshentry/internal/testutil/backend"
)

// proxyConfigEntries is a registry with one of each kind of cluster the tables show.
const proxyConfigEntries = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: BACKEND}, locality: us-east/zone-a}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: DNS
  endpoints: [{address: db.internal.example, weight: 2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anywhere}
spec:
  hosts: [pass.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hidden, namespace: shop}
spec:
  hosts: [hidden.example.com]
  exportTo: ["."]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.9}]
`

func TestProxyConfigPrintsTheRunningProxysState(t *testing.T) {
	t.Parallel()
	be := backend.HTTP(t, "api", "127.0.0.1:0")
	_, backendPort, _ := net.SplitHostPort(be.Addr)
	bound, _ := startAdminRun(t, strings.ReplaceAll(proxyConfigEntries, "BACKEND", backendPort), nil)
	for range 2 {
		if code, _ := get(t, bound["forward proxy"], "http://api.example.com/"); code != 200 {
			t.Fatalf("api.example.com answered %d", code)
		}
	}
	// The engine reports a request done just after the client has its response.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := adminGet(t, "GET", bound["admin"], "/clusters")
		if strings.Contains(body, "::rq_active::0") && !strings.Contains(body, "::rq_active::1") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Ports are replaced by as many X's, so that the tables keep the widths they were aligned for.
	var pairs []string
	for _, a := range []string{backendPort, port(bound["forward proxy"]), port(bound["admin"])} {
		pairs = append(pairs, a, strings.Repeat("X", len(a)))
	}
	normalize := strings.NewReplacer(pairs...).Replace
	for _, kind := range []string{"clusters", "endpoints", "listeners", "routes", "registry"} {
		t.Run("prints "+kind+" as a table", func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run([]string{"proxy-config", kind, "--admin", bound["admin"].String()}, nil, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			proxyConfigGolden(t, kind+".txt", normalize(stdout.String()))
		})
	}
	t.Run("prints the admin API's JSON with -o json", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"proxy-config", "endpoints", "--admin", "http://" + bound["admin"].String(), "-o", "json"}, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		var cs admin.ClustersJSON
		if err := json.Unmarshal(stdout.Bytes(), &cs); err != nil || len(cs.ClusterStatuses) != 3 {
			t.Fatalf("-o json printed %d clusters (%v):\n%s", len(cs.ClusterStatuses), err, stdout.String())
		}
	})
}

func TestProxyConfigRefusesWhatItCannotDo(t *testing.T) {
	t.Parallel()
	dead := "127.0.0.1:1"
	tests := []struct {
		name       string
		args       []string
		wantExit   int
		wantStderr string
	}{
		{name: "refuses a kind it does not know", args: []string{"proxy-config", "secrets"}, wantExit: 2, wantStderr: `unknown kind "secrets"`},
		{name: "refuses an output format it does not know", args: []string{"proxy-config", "clusters", "-o", "yaml"}, wantExit: 2, wantStderr: "-o must be table or json"},
		{name: "needs a kind", args: []string{"proxy-config"}, wantExit: 2, wantStderr: "accepts 1 arg"},
		{name: "exits 1 naming the admin API when nothing answers", args: []string{"proxy-config", "clusters", "--admin", dead}, wantExit: 1, wantStderr: "reading the admin API"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(tc.args, nil, &stdout, &stderr)
			if code != tc.wantExit || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, stderr.String(), tc.wantExit, tc.wantStderr)
			}
		})
	}
}

func port(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// proxyConfigGolden compares got with testdata/proxy-config/name, or rewrites it under -update.
func proxyConfigGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "proxy-config", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update to accept)\n--- got\n%s\n--- want\n%s", name, got, fmt.Sprint(string(want)))
	}
}
