package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/xds/envoy"
	"github.com/meshentry/meshentry/internal/xds/mcp"
	"github.com/meshentry/meshentry/internal/xds/server"
)

// xdsFlags configure `meshentry xds`; the source, reload, identity and log flags are run's.
type xdsFlags struct {
	run        runFlags
	listen     string
	maxNodes   int
	maxUnacked int64
	maxStream  uint32
	// monitoring is the /metrics address; monitoringReady, when set, gets it bound (tests).
	monitoring      string
	monitoringReady func(net.Addr)
	// extra is the lead's hook for the MCP documents (mcp.Resources) at merge.
	extra server.Extra
}

func newXDSCommand() *cobra.Command { return newXDSCommandFor(new(xdsFlags)) }

func newXDSCommandFor(f *xdsFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "xds --listen ADDR -f PATH...",
		Short: "Serve the registry over xDS (ADS, SotW and Delta) to Envoy sidecars and proxyless gRPC clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := notifyDrain(cmd)
			defer stop()
			return runXDS(ctx, cmd, f, nil)
		},
	}
	f.run.src.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:15010", "gRPC address for ADS and CSDS (Istio's plaintext xDS port); without --identity-dir it must be a loopback address")
	fl.StringVar(&f.run.policy, "outbound-policy", "ALLOW_ANY", "what the proxies' catch-alls do: ALLOW_ANY (PassthroughCluster, Istio's default) or REGISTRY_ONLY (BlackHoleCluster)")
	fl.StringVar(&f.run.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.Int64Var(&f.maxUnacked, "xds-max-unacked-bytes", server.DefaultMaxUnackedBytes, "response bytes sent to clients and not yet acknowledged, over all streams; a send beyond it waits for ACKs")
	fl.IntVar(&f.maxNodes, "xds-max-nodes", server.DefaultMaxNodes, "nodes tracked at once; a new node beyond it is refused (counted in the log)")
	fl.StringVar(&f.monitoring, "monitoring", "127.0.0.1:15014", "address serving the xDS server's Prometheus metrics on /metrics (istiod's monitoring port); empty serves none")
	fl.Uint32Var(&f.maxStream, "xds-max-streams", 100000, "concurrent gRPC streams per client connection")
	f.run.reload.register(fl)
	f.run.identity.register(fl)
	f.run.kube.register(fl)
	fl.StringVar(&f.run.proxyPolicy.rootNamespace, "root-namespace", "istio-system", "the mesh root namespace, whose exported DestinationRules apply to every namespace")
	return cmd
}

// runXDS serves until ctx ends; ready, when set, gets the bound address.
func runXDS(ctx context.Context, cmd *cobra.Command, f *xdsFlags, ready func(net.Addr)) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.run.logLevel)); err != nil {
		return usageError("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	allowAny, err := parsePolicy(f.run.policy)
	if err != nil {
		return err
	}
	root := f.run.proxyPolicy.rootNamespace
	creds, stopID, err := xdsCredentials(ctx, f, log)
	if err != nil {
		return err
	}
	defer stopID()
	w, res, err := loadSource(cmd, &f.run, log)
	if err != nil {
		return err
	}
	// With --kube, the cluster's objects merge with the files, as for run.
	var kr *kubeRun
	if kr, res, err = startKube(ctx, &f.run.kube, log, res); err != nil {
		return err
	}
	if n := res.Errors(); n > 0 {
		log.Warn("xds: invalid documents left out", "errors", n)
	}
	srv := server.New(ctx, server.Config{Options: envoy.Options{AllowAny: allowAny, RootNamespace: root},
		Extra: f.extra, MCP: mcp.NewCache(), Logger: log, MaxNodes: f.maxNodes, MaxUnackedBytes: f.maxUnacked})
	if err := srv.Update(res.Snapshot); err != nil {
		log.Error("xds: first translation", "err", err)
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("xds listen %s: %w", f.listen, err)}
	}
	stopMetrics, err := serveXDSMetrics(ctx, f.monitoring, srv, log, f.monitoringReady)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()
	opts := []grpc.ServerOption{grpc.MaxConcurrentStreams(f.maxStream),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{PermitWithoutStream: true})}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	publish := func(s *registry.Snapshot) {
		if err := srv.Update(s); err != nil {
			log.Error("xds: translation after reload", "err", err)
		}
	}
	stopReload := startXDSReload(ctx, w, kr.fileApply(publish))
	defer stopReload()
	defer kr.serve(publish)()
	log.Info("xds serving", "listen", ln.Addr().String(), "services", len(res.Snapshot.Services), "tls", creds != nil)
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(ln) }()
	select {
	case <-ctx.Done():
		g.Stop()
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return &exitError{code: 1, err: fmt.Errorf("xds serve: %w", err)}
	}
}

// xdsCredentials is mTLS from --identity-dir, or nil (plaintext) on a loopback address only.
func xdsCredentials(ctx context.Context, f *xdsFlags, log *slog.Logger) (credentials.TransportCredentials, func(), error) {
	src, stop, err := f.run.identity.start(ctx, log)
	if err != nil {
		return nil, nil, err
	}
	if src != nil {
		return credentials.NewTLS(src.ServerConfig()), stop, nil
	}
	host, _, err := net.SplitHostPort(f.listen)
	if err != nil {
		return nil, nil, usageError("--listen %q: %v", f.listen, err)
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return nil, nil, usageError("--listen %s is not a loopback address: pass --identity-dir for mTLS, or listen on 127.0.0.1", f.listen)
	}
	return nil, stop, nil
}

// startXDSReload hands every accepted reload to apply, and reloads on SIGHUP as run does.
func startXDSReload(ctx context.Context, w interface {
	Run(context.Context, func(*compile.Result))
	Reload()
}, apply func(*compile.Result)) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, apply)
	}()
	stopHUP := onSIGHUP(w.Reload)
	return func() { stopHUP(); cancel(); <-done }
}
