// Package mcpserver runs go-control-plane's ADS server over an mcp.Cache on a loopback port, for
// tests of xDS clients. Unlike `meshentry xds` it serves whatever it is given, a document the
// client must refuse included; it records the NACKs it receives, and it may be stopped and
// started again on the same port.
package mcpserver

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/meshentry/meshentry/internal/xds/mcp"
)

// Server is one ADS server; its Cache holds what it serves.
type Server struct {
	Cache *mcp.Cache
	t     testing.TB
	tls   *tls.Config // when set, the server speaks TLS only
	addr  string
	mu    sync.Mutex
	gs    *grpc.Server
	stop  context.CancelFunc
	nacks []string
}

// New returns a server that is not listening yet (serving TLS only when cfg is set); the test's
// cleanup stops it.
func New(t testing.TB, cfg *tls.Config) *Server {
	s := &Server{Cache: mcp.NewCache(), t: t, tls: cfg, addr: "127.0.0.1:0"}
	t.Cleanup(s.Halt)
	return s
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() string { return s.addr }

// Start listens, on the port of an earlier Start when there was one: a port just closed may be
// held for a moment, so the listen is tried again for a few seconds.
func (s *Server) Start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", s.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, req *discovery.DiscoveryRequest) error {
		if req.GetErrorDetail() != nil {
			s.mu.Lock()
			s.nacks = append(s.nacks, req.GetErrorDetail().GetMessage())
			s.mu.Unlock()
		}
		return nil
	}}
	var opts []grpc.ServerOption
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	gs := grpc.NewServer(opts...)
	discovery.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, s.Cache, cb))
	go func() { _ = gs.Serve(ln) }()
	s.mu.Lock()
	s.gs, s.stop = gs, cancel
	s.mu.Unlock()
}

// Halt stops the server and closes its streams; it may be started again.
func (s *Server) Halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gs != nil {
		s.stop()
		s.gs.Stop()
		s.gs = nil
	}
}

// NACKs returns the error details of the NACKs received so far.
func (s *Server) NACKs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.nacks...)
}
