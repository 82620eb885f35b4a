package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/metrics"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/resolve"
)

// runState is what `run` starts, in the order runProxy starts it, with the cleanups that undo
// it: close runs them in reverse, as the defers of one long function would.
type runState struct {
	ctx context.Context
	cmd *cobra.Command
	f   *runFlags

	cfg      proxy.Config
	levelVar *slog.LevelVar
	log      *slog.Logger
	dnsp     *dnsProxy
	watcher  configSource
	res      *compile.Result
	kr       *kubeRun
	lns      listeners
	inb      *inboundSet
	mm       *metrics.Metrics
	p        *proxy.Proxy
	gw       *gatewayRun
	fwd      *forwardLoopRun
	undo     []func()
}

func (r *runState) later(undo func()) { r.undo = append(r.undo, undo) }

func (r *runState) close() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
}

// load reads the flags and the config (files, or the xDS server, merged with --kube), and
// starts what the proxy needs before it is built: the resolver and the workload identity.
func (r *runState) load() error {
	f := r.f
	var err error
	if r.cfg, r.levelVar, err = proxyConfig(r.cmd, f); err != nil {
		return err
	}
	r.log = r.cfg.Logger
	if r.dnsp, err = prepareDNS(&f.dns, r.log); err != nil {
		return err
	}
	if r.watcher, r.res, err = loadConfigSource(r.ctx, r.cmd, f, r.log, r.dnsp.compileOptions()...); err != nil {
		return err
	}
	if err := startupFindings(r.cmd, r.log, r.res, f.allowInvalid); err != nil {
		return err
	}
	if r.kr, r.res, err = startKube(r.ctx, &f.kube, r.log, r.res, r.dnsp.compileOptions()...); err != nil {
		return err
	}
	if r.cfg.Resolver, err = resolve.New(resolve.Config{Server: f.dnsServer, Logger: r.log}); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("dns: %w", err)}
	}
	r.later(func() { r.cfg.Resolver.Close() })
	var stopIdentity func()
	if r.cfg.Identity, stopIdentity, err = f.identity.start(r.ctx, r.log); err != nil {
		return err
	}
	r.later(stopIdentity)
	return nil
}

// start opens the listeners and builds the proxy, its DNS proxy, gateway, metrics and
// capture rules, then follows the config's changes. A failure closes the listeners it opened.
func (r *runState) start() error {
	f, log := r.f, r.log
	var err error
	if r.lns, err = openListeners(f); err != nil {
		return err
	}
	if r.lns.admin != nil {
		// The admin API and pprof are never reachable through the proxy.
		r.cfg.SelfAddrs = append(r.cfg.SelfAddrs, r.lns.admin.Addr().(*net.TCPAddr).AddrPort())
	}
	if r.inb, err = openInbound(&f.inbound, &r.cfg, log); err != nil {
		closeListeners(r.lns)
		return err
	}
	r.later(r.inb.close)
	mm, closeLog, err := observe(r.cmd, f, log, &r.cfg, r.watcher, func() *proxy.Proxy { return r.p })
	if err != nil {
		closeListeners(r.lns)
		return err
	}
	r.mm = mm
	r.later(closeLog) // after the drain, so the lines of the last requests are written
	if err := r.inb.registerMetrics(mm.Registry()); err != nil {
		log.Error("inbound metrics left out", "err", err)
	}
	snap := r.res.Snapshot
	r.p = proxy.New(r.cfg, snap)
	scope := registry.ScopeProxy{Namespace: f.src.namespace, Labels: r.cfg.Labels, RootNamespace: r.cfg.RootNamespace}
	if err := r.dnsp.open(snap, scope, f.dnsServer, mm.Registry()); err != nil {
		closeListeners(r.lns)
		return err
	}
	if r.gw, err = startGateway(r.ctx, &f.gateway, &r.cfg, snap, r.p); err != nil {
		closeListeners(r.lns)
		abandon(r.p)
		return err
	}
	if r.fwd, err = startForwardLoop(f, r.p); err != nil {
		closeListeners(r.lns)
		r.gw.close()
		abandon(r.p)
		return err
	}
	r.later(r.fwd.close)
	if r.fwd != nil {
		r.lns.forwardLoop = r.fwd.addr
	}
	r.registerMetrics()
	startHeapShrink(r.ctx, f.limits.heapShrink, r.mm.Registry(), log)
	setGoroutinePool(f.limits.poolIdle, r.mm.Registry(), log)
	undoCapture, err := f.capture.start(r.ctx, r.cmd.Flags(), log, r.lns.capture, r.dnsp.port())
	if err != nil {
		closeListeners(r.lns)
		return err
	}
	r.later(undoCapture)
	log.Info("registry loaded", "services", len(snap.Services), "documents", r.res.Documents, "errors", r.res.Errors())
	// Each accepted snapshot goes to the proxy and the DNS proxy; with --kube, files and the
	// cluster's objects are merged first.
	publish := func(s *registry.Snapshot) {
		r.p.Update(s)
		r.dnsp.update(s)
	}
	r.later(startReload(r.ctx, r.watcher, r.kr.fileApply(publish)))
	r.later(r.kr.serve(publish))
	return nil
}

// registerMetrics adds the gateway's, the kube source's, the xDS client's and the event loops'
// metrics.
func (r *runState) registerMetrics() {
	reg := r.mm.Registry()
	if err := r.gw.registerMetrics(reg); err != nil {
		r.log.Error("gateway metrics left out", "err", err)
	}
	if err := r.kr.registerMetrics(reg); err != nil {
		r.log.Error("kube metrics left out", "err", err)
	}
	registerXDSClientMetrics(reg, r.watcher, r.log)
	if err := registerLoopMetrics(reg, r.loopStats(), r.loopHTTPStats()); err != nil {
		r.log.Error("event loop metrics left out", "err", err)
	}
}

// loopStats are the counters of the evloop Groups serving listeners, by listener.
func (r *runState) loopStats() map[string]func() evloop.Stats {
	loops := map[string]func() evloop.Stats{}
	if r.gw != nil && r.gw.gw.EventLoop() {
		loops["gateway"] = r.gw.gw.LoopStats
	}
	if r.fwd != nil {
		loops["forward"] = r.fwd.group.Stats
	}
	return loops
}

// loopHTTPStats are the counters of the HTTP engines on the loops, by listener: the forward
// port's, when it runs on a Group.
func (r *runState) loopHTTPStats() map[string]func() httpfwd.LoopStats {
	if r.fwd == nil {
		return nil
	}
	return map[string]func() httpfwd.LoopStats{"forward": r.p.ForwardLoopHTTPStats}
}

// serve starts every listener's loop in g, and the admin API.
func (r *runState) serve(g *serveGroup) *http.Server {
	g.serve("forward proxy", r.lns.forward, r.p.ServeForward)
	r.fwd.serve(g)
	g.serve("capture", r.lns.capture, r.p.ServeCapture)
	r.inb.serve(g)
	r.dnsp.serve(g)
	r.gw.serve(g)
	return serveAdmin(g, r.f, r.lns.admin, adminWiring{log: r.log, level: r.levelVar, proxy: r.p, lns: r.lns,
		inbound: r.inb.adminListeners(), ns: r.f.src.namespace, ready: withIdentity(g.notReady, r.cfg.Identity),
		reload: watcherReload(r.watcher), metrics: r.mm.Handler(), dns: r.dnsp.adminStatus()})
}

// drain lets the requests in flight finish within --drain-timeout, then reports the listeners
// that failed.
func (r *runState) drain(g *serveGroup, adminSrv *http.Server) error {
	timeout := r.f.drain.timeout
	waitInbound := r.inb.drain(r.log, timeout)
	waitGateway := r.gw.drain(r.log, timeout)
	waitForwardLoop := r.fwd.drain(r.log, timeout)
	drainProxy(r.log, r.p, adminSrv, timeout)
	waitInbound()
	waitGateway()
	waitForwardLoop()
	g.wg.Wait()
	if len(g.failures) > 0 {
		return &exitError{code: 1, err: errors.New(strings.Join(g.failures, "; "))}
	}
	return nil
}
