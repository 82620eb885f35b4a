package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/gateway"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/registry"
)

// gatewayFlags make `run` an egress gateway: it serves the servers of the Gateways whose
// selector matches --labels instead of only acting as a sidecar.
type gatewayFlags struct {
	enabled        bool
	bind           string
	ports          []string
	credentialsDir string
	maxConnections int
	eventLoop      bool
}

func (g *gatewayFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&g.enabled, "gateway", false, "run as the gateway(s) whose selector matches --labels: listen on each Gateway server's port, accept the hosts it declares and route with the VirtualServices bound to it")
	fl.StringVar(&g.bind, "gateway-bind", "", "address the Gateway server ports are bound on (empty: every address, as Envoy's 0.0.0.0)")
	fl.StringSliceVar(&g.ports, "gateway-port", nil, "SERVER=BIND: bind the Gateway server port SERVER on port BIND, as Istio binds a gateway Service port to its targetPort (80=8080); BIND 0 takes a free port; repeatable")
	fl.StringVar(&g.credentialsDir, "credentials-dir", "", "directory holding one folder per Gateway tls credentialName, each with tls.crt, tls.key and (MUTUAL) ca.crt; followed as they change")
	fl.BoolVar(&g.eventLoop, "gateway-event-loop", false, "serve the Gateway server ports on raw epoll event loops (Linux), one per CPU, outside Go's netpoller: TCP servers whose tcp route goes to a STATIC service with IP endpoints in plaintext are relayed by the loops, every other connection is handed to the usual path")
	fl.IntVar(&g.maxConnections, "gateway-max-connections", gateway.DefaultMaxConnections, "connections open at once on one Gateway server port; beyond it a connection is closed when accepted, and counted (-1: no cap)")
}

// parsePorts reads the --gateway-port pairs.
func (g *gatewayFlags) parsePorts() (map[uint32]uint16, error) {
	out := map[uint32]uint16{}
	for _, kv := range g.ports {
		s, b, ok := strings.Cut(kv, "=")
		server, err1 := strconv.ParseUint(s, 10, 16)
		bind, err2 := strconv.ParseUint(b, 10, 16)
		if !ok || err1 != nil || err2 != nil || server == 0 {
			return nil, usageError("--gateway-port: %q is not SERVER=BIND with two port numbers", kv)
		}
		out[uint32(server)] = uint16(bind)
	}
	return out, nil
}

// gatewayRun is a started gateway; a nil one (no --gateway) does nothing.
type gatewayRun struct {
	gw    *gateway.Gateway
	creds *gateway.Credentials
	stop  context.CancelFunc
	done  chan struct{}
}

// startGateway binds the Gateway server ports for p (exit 2 when one cannot be bound or the
// config selects no server) and follows the credential folders until drain.
func startGateway(ctx context.Context, f *gatewayFlags, cfg *proxy.Config, snap *registry.Snapshot, p *proxy.Proxy) (*gatewayRun, error) {
	if !f.enabled {
		return nil, nil
	}
	ports, err := f.parsePorts()
	if err != nil {
		return nil, err
	}
	creds := gateway.NewCredentials(f.credentialsDir, cfg.Logger)
	gw, err := gateway.New(gateway.Config{Bind: f.bind, Ports: ports, Namespace: cfg.Namespace, Labels: cfg.Labels, Proxy: p,
		Identity: cfg.Identity, Credentials: creds, HTTP: cfg.HTTP, Telemetry: cfg.Telemetry, MaxConnections: f.maxConnections,
		Logger: cfg.Logger, EventLoop: f.eventLoop}, snap)
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--gateway: %w", err)}
	}
	if err := gw.Listen(); err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("--gateway: %w", err)}
	}
	ctx, stop := context.WithCancel(ctx)
	r := &gatewayRun{gw: gw, creds: creds, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		creds.Run(ctx)
	}()
	return r, nil
}

// serve runs each server port's accept loop in g, named "gateway port N".
func (r *gatewayRun) serve(g *serveGroup) {
	if r == nil {
		return
	}
	for port, ln := range r.gw.Listeners() {
		g.serve(fmt.Sprintf("gateway port %d", port), ln, func(ln net.Listener) error { return r.gw.ServeListener(port, ln) })
	}
	if r.gw.EventLoop() {
		// The loops serve since Listen; only their addresses are announced.
		for port, addr := range r.gw.Addrs() {
			g.announce(fmt.Sprintf("gateway port %d", port), addr)
		}
	}
}

// drain starts the gateway's drain beside the proxy's and returns the wait for it.
func (r *gatewayRun) drain(log *slog.Logger, timeout time.Duration) func() {
	if r == nil {
		return func() {}
	}
	return drainAside(log, "gateway drain cut short", timeout, r.gw.Shutdown, func() {
		r.stop()
		<-r.done
	})
}

// drainAside runs shutdown under timeout on its own goroutine, logging cut when it had to cut
// the drain short, then after; the returned func waits for both. The gateway's and the forward
// loop's drains run beside the proxy's this way.
func drainAside(log *slog.Logger, cut string, timeout time.Duration, shutdown func(context.Context) error, after func()) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Info(cut, "err", err)
		}
		after()
	}()
	return func() { <-done }
}

// close releases a gateway whose run failed to start after it.
func (r *gatewayRun) close() {
	if r == nil {
		return
	}
	r.gw.Close()
	r.stop()
	<-r.done
}

// abandon stops a proxy that will not serve, when the start fails after it was made.
func abandon(p *proxy.Proxy) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.Shutdown(ctx) // nothing was served, so nothing is cut short
}

// announce reports a listener something else serves (the gateway's event loops), as serve
// reports its own.
func (g *serveGroup) announce(name string, addr net.Addr) {
	g.bound[name] = addr
	fmt.Fprintf(g.out, "meshentry: %s listening on %s\n", name, addr)
}
