package main

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/metrics/metricstest"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/testutil/mcpserver"
	"github.com/meshentry/meshentry/internal/xds/mcp"
)

// mcpServer is the test's ADS server (mcpserver): unlike `meshentry xds`, which validates what
// it serves, it can be made to serve a document the client must refuse.
type mcpServer struct {
	*mcpserver.Server
	t *testing.T
}

func startMCPServer(t *testing.T) *mcpServer {
	s := &mcpServer{Server: mcpserver.New(t, nil), t: t}
	s.Start()
	return s
}

// serve publishes one ServiceEntry, valid or (port 0) one the client refuses.
func (s *mcpServer) serve(host string, valid bool) {
	s.t.Helper()
	port := uint32(80)
	if !valid {
		port = 0
	}
	doc := config.NewDocument(config.KindServiceEntry, "default", "se", &networking.ServiceEntry{Hosts: []string{host},
		Ports: []*networking.ServicePort{{Number: port, Name: "http", Protocol: "HTTP"}}, Resolution: networking.ServiceEntry_DNS})
	rs := mcp.Resources(registry.Build(nil, 1))
	r, err := mcp.Resource(doc)
	if err != nil {
		s.t.Fatal(err)
	}
	rs[mcp.ServiceEntryType] = []types.Resource{r}
	if err := s.Cache.SetResources(rs); err != nil {
		s.t.Fatal(err)
	}
}

// TestXDSClientMetrics reads the xDS client's metrics from /stats/prometheus of a `meshentry
// run --config-source xds://…` while its server accepts, is refused (a real NACK), goes away and
// comes back.
func TestXDSClientMetrics(t *testing.T) {
	t.Parallel()
	srv := startMCPServer(t)
	srv.serve("a.example.com", true)
	bound := startRunArgs(t, "--config-source", "xds://"+srv.Addr(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--xds-node-id", "sidecar~127.0.0.1~vm.default~default.svc.cluster.local",
		"--xds-initial-fetch-timeout", "5s", "--xds-backoff-base", "50ms", "--xds-backoff-max", "200ms")
	url := "http://" + bound["admin"].String() + "/stats/prometheus"
	value := func(f metricstest.Families, name string) float64 { return f.Sum(name, nil) }
	steps := []struct {
		name   string
		before func()
		want   func(metricstest.Families) bool
	}{
		{name: "counts the first config's ACKs on one connected stream",
			want: func(f metricstest.Families) bool {
				return value(f, "meshentry_xds_client_acks_total") >= 1 && value(f, "meshentry_xds_client_nacks_total") == 0 &&
					value(f, "meshentry_xds_client_connected") == 1 && value(f, "meshentry_xds_client_streams_total") == 1 &&
					value(f, "meshentry_xds_client_reconnects_total") == 0
			}},
		{name: "counts the NACK of a ServiceEntry with port 0", before: func() { srv.serve("b.example.com", false) },
			want: func(f metricstest.Families) bool { return value(f, "meshentry_xds_client_nacks_total") == 1 }},
		{name: "shows the stream down and failed when the server goes away", before: srv.Halt,
			want: func(f metricstest.Families) bool {
				return value(f, "meshentry_xds_client_connected") == 0 && value(f, "meshentry_xds_client_stream_failures_total") >= 1
			}},
		{name: "counts the reconnection when the server returns", before: func() { srv.serve("c.example.com", true); srv.Start() },
			want: func(f metricstest.Families) bool {
				return value(f, "meshentry_xds_client_connected") == 1 && value(f, "meshentry_xds_client_reconnects_total") >= 1
			}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.before != nil {
				step.before()
			}
			if f := scrapeUntil(t, url, step.want); !step.want(f) {
				var got []string
				for name := range f {
					if strings.HasPrefix(name, "meshentry_xds_client_") {
						got = append(got, fmt.Sprintf("%s=%v", name, value(f, name)))
					}
				}
				sort.Strings(got)
				t.Fatalf("after 5 s the xDS client metrics are %v", got)
			}
		})
	}
}
