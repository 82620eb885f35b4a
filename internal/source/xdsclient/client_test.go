package xdsclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/anypb"
	mcpapi "istio.io/api/mcp/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/source"
	"github.com/meshentry/meshentry/internal/testutil/backend"
	"github.com/meshentry/meshentry/internal/testutil/mcpserver"
	"github.com/meshentry/meshentry/internal/xds/mcp"
)

// xdsServer is the test's ADS server (mcpserver), with what this package's tests publish.
type xdsServer struct {
	*mcpserver.Server
	t *testing.T
}

func startServer(t *testing.T, hosts ...string) *xdsServer {
	t.Helper()
	return startServerTLS(t, nil, hosts...)
}

func startServerTLS(t *testing.T, cfg *tls.Config, hosts ...string) *xdsServer {
	t.Helper()
	s := &xdsServer{Server: mcpserver.New(t, cfg), t: t}
	s.set(hosts...)
	s.Start()
	return s
}

// set publishes one ServiceEntry per host, in namespace shop.
func (s *xdsServer) set(hosts ...string) {
	s.t.Helper()
	var docs []*config.Document
	for i, h := range hosts {
		docs = append(docs, config.NewDocument(config.KindServiceEntry, "shop", fmt.Sprintf("se%d", i), &networking.ServiceEntry{
			Hosts: []string{h}, Ports: []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
			Resolution: networking.ServiceEntry_DNS}))
	}
	if err := s.Cache.Set(registry.Build(docs, 1)); err != nil {
		s.t.Fatal(err)
	}
}

// hostsOf lists a snapshot's service hosts.
func hostsOf(res *compile.Result) string {
	var hs []string
	for _, svc := range res.Snapshot.Services {
		hs = append(hs, svc.Host)
	}
	return strings.Join(hs, ",")
}

// running opens a client to s and runs it until the test ends; applied receives what Run applies.
func running(t *testing.T, addr string, fetch time.Duration) (*Client, *compile.Result, chan *compile.Result) {
	t.Helper()
	return runningTLS(t, addr, nil, fetch)
}

func runningTLS(t *testing.T, addr string, cfg *tls.Config, fetch time.Duration) (*Client, *compile.Result, chan *compile.Result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, res, err := Open(ctx, Config{Addr: addr, TLS: cfg, NodeID: "sidecar~127.0.0.1~test.shop~shop.svc.cluster.local",
		InitialFetchTimeout: fetch, BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	applied := make(chan *compile.Result, 16)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx, func(r *compile.Result) { applied <- r }) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, res, applied
}

func waitApplied(t *testing.T, applied chan *compile.Result, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-applied:
			if hostsOf(r) == want {
				return
			}
		case <-deadline:
			t.Fatalf("no config with hosts %q applied within 5 s", want)
		}
	}
}

func TestClientFollowsTheServer(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	srv := startServer(t, "a.example.com")
	c, first, applied := running(t, srv.Addr(), 5*time.Second)
	t.Run("starts with the server's config", func(t *testing.T) {
		if hostsOf(first) != "a.example.com" || first.Errors() != 0 {
			t.Fatalf("startup config %q with %d errors", hostsOf(first), first.Errors())
		}
		if d := first.Snapshot.Services[0].Source; !strings.HasPrefix(d.File, "xds://"+srv.Addr()+"/"+mcp.ServiceEntryType+"/shop/se0") {
			t.Errorf("source %q does not name the server, type and resource", d.File)
		}
	})
	t.Run("applies a ServiceEntry the server adds", func(t *testing.T) {
		srv.set("a.example.com", "b.example.com")
		waitApplied(t, applied, "a.example.com,b.example.com")
	})
	t.Run("refuses an invalid ServiceEntry with a NACK and keeps the last good config", func(t *testing.T) {
		bad := config.NewDocument(config.KindServiceEntry, "shop", "bad", &networking.ServiceEntry{Hosts: []string{"c.example.com"},
			Ports: []*networking.ServicePort{{Number: 0, Name: "http", Protocol: "HTTP"}}})
		good := mcp.Resources(registry.Build(nil, 1))
		r, err := mcp.Resource(bad)
		if err != nil {
			t.Fatal(err)
		}
		good[mcp.ServiceEntryType] = []types.Resource{r}
		if err := srv.Cache.SetResources(good); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return c.Status().LastResult == source.Refused && len(srv.NACKs()) > 0 })
		st := c.Status()
		if !strings.Contains(st.LastError, "error") || len(st.LastErrorDiagnostics) == 0 ||
			!strings.Contains(st.LastErrorDiagnostics[0].String(), "xds://"+srv.Addr()+"/"+mcp.ServiceEntryType+"/shop/bad") {
			t.Errorf("status %q %v does not name the refused document", st.LastError, st.LastErrorDiagnostics)
		}
		if m := srv.NACKs()[0]; !strings.Contains(m, "shop/bad") {
			t.Errorf("NACK says %q, not which document", m)
		}
		if st.Services != 2 {
			t.Errorf("serving %d services, want the last good 2", st.Services)
		}
	})
	t.Run("keeps serving while the server is away and follows it when it returns", func(t *testing.T) {
		if !c.Stats().Connected {
			t.Error("not connected while the server answers")
		}
		srv.Halt()
		waitFor(t, func() bool { return c.Stats().Failures > 0 && !c.Stats().Connected })
		if st := c.Status(); st.Services != 2 {
			t.Fatalf("serving %d services with the server away, want 2", st.Services)
		}
		srv.set("d.example.com")
		srv.Start()
		waitApplied(t, applied, "d.example.com")
		waitFor(t, func() bool { return c.Stats().Connected })
	})
	t.Run("applies nothing when a server returns with the same documents", func(t *testing.T) {
		before := c.Status().Accepted
		streams := c.Stats().Streams
		srv.Halt()
		srv.Start()
		waitFor(t, func() bool { return c.Stats().Streams > streams })
		time.Sleep(200 * time.Millisecond) // a push would arrive at once on the new stream
		if after := c.Status().Accepted; after != before {
			t.Fatalf("accepted %d configs after the restart, want none", after-before)
		}
	})
	t.Run("refuses a resource that fails strict decoding with a NACK", func(t *testing.T) {
		nacks := c.Stats().Nacks
		body, _ := anypb.New(&networking.ServiceEntry{Hosts: []string{"e.example.com"}})
		body.Value = append(body.Value, 0xf8, 0x3e, 0x01) // field 999: unknown to the spec
		rs := mcp.Resources(registry.Build(nil, 1))
		rs[mcp.ServiceEntryType] = []types.Resource{&mcpapi.Resource{Metadata: &mcpapi.Metadata{Name: "shop/e", Version: "1"}, Body: body}}
		if err := srv.Cache.SetResources(rs); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return c.Stats().Nacks > nacks })
		if st := c.Status(); !strings.Contains(st.LastError, "not decoded") || st.Services != 1 {
			t.Errorf("status %q serving %d services, want a decode refusal and the last good 1", st.LastError, st.Services)
		}
	})
}

func TestClientStartsEmptyWithoutAServer(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	srv := startServer(t, "late.example.com")
	addr := srv.Addr()
	srv.Halt()
	c, first, applied := running(t, addr, 200*time.Millisecond)
	t.Run("serves an empty registry after the initial fetch timeout", func(t *testing.T) {
		if len(first.Snapshot.Services) != 0 {
			t.Fatalf("startup config has %q", hostsOf(first))
		}
	})
	t.Run("takes the server's config once it comes up", func(t *testing.T) {
		srv.Start()
		waitApplied(t, applied, "late.example.com")
		if st := c.Status(); st.Services != 1 || st.Version < 2 {
			t.Errorf("status %+v", st)
		}
	})
}

func TestClientOverTLS(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ca := backend.NewCA(t)
	leaf := ca.Leaf(t, "xds.test")
	srv := startServerTLS(t, &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}, "secure.example.com")
	t.Run("takes the config from a server whose certificate it trusts", func(t *testing.T) {
		_, first, _ := runningTLS(t, srv.Addr(), backend.TLSClient(ca, "xds.test"), 5*time.Second)
		if hostsOf(first) != "secure.example.com" {
			t.Fatalf("startup config %q", hostsOf(first))
		}
	})
	t.Run("takes nothing from a server whose certificate it does not trust", func(t *testing.T) {
		c, first, _ := runningTLS(t, srv.Addr(), backend.TLSClient(backend.NewCA(t), "xds.test"), 300*time.Millisecond)
		if len(first.Snapshot.Services) != 0 || c.Stats().Failures == 0 {
			t.Fatalf("startup config %q after %d failures", hostsOf(first), c.Stats().Failures)
		}
	})
}

func TestBackoffStaysWithinItsBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		failures int
		lo, hi   time.Duration
	}{
		{name: "waits about the base after the first failure", failures: 0, lo: 250 * time.Millisecond, hi: 500 * time.Millisecond},
		{name: "doubles with each failure", failures: 3, lo: 2 * time.Second, hi: 4 * time.Second},
		{name: "never waits longer than the cap", failures: 50, lo: 15 * time.Second, hi: 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 100 {
				if d := backoff(DefaultBackoffBase, DefaultBackoffMax, tc.failures); d < tc.lo || d > tc.hi {
					t.Fatalf("backoff %v, want within [%v, %v]", d, tc.lo, tc.hi)
				}
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}

func TestClientStartsWithoutARefusedCollection(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	srv := startServer(t)
	bad := config.NewDocument(config.KindServiceEntry, "shop", "bad", &networking.ServiceEntry{Hosts: []string{"c.example.com"},
		Ports: []*networking.ServicePort{{Number: 0, Name: "http", Protocol: "HTTP"}}})
	r, err := mcp.Resource(bad)
	if err != nil {
		t.Fatal(err)
	}
	rs := mcp.Resources(registry.Build(nil, 1))
	rs[mcp.ServiceEntryType] = []types.Resource{r}
	if err := srv.Cache.SetResources(rs); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, first, _ := running(t, srv.Addr(), 30*time.Second)
	t.Run("starts once every collection answered, without waiting for the initial fetch timeout", func(t *testing.T) {
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("startup took %v", took)
		}
		if len(first.Snapshot.Services) != 0 || first.Errors() != 0 {
			t.Errorf("startup config %q with %d errors, want the last good (empty) one", hostsOf(first), first.Errors())
		}
	})
	t.Run("reports the refused collection", func(t *testing.T) {
		if st := c.Status(); st.Refused != 1 || !strings.Contains(st.LastError, "1 error") {
			t.Errorf("status refused %d, %q", st.Refused, st.LastError)
		}
	})
}
