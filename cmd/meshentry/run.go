package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/meshentry/meshentry/internal/admin"
	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/resolve"
)

type runFlags struct {
	src           sourceFlags
	listen        string
	adminAddr     string
	captureListen string
	locality      string
	network       string
	dnsServer     string
	policy        string
	logLevel      string
	// allowInvalid serves the valid documents when some are invalid, instead of refusing to start.
	allowInvalid bool
}

func newRunCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run -f PATH...",
		Short: "Serve as the proxy: HTTP forward proxy and CONNECT, transparent capture, admin endpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go func() {
				// After the first signal, a second one kills the process the default way.
				<-ctx.Done()
				stop()
			}()
			return runProxy(ctx, cmd, &f, nil)
		},
	}
	f.src.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:15001", "forward proxy address (HTTP_PROXY/HTTPS_PROXY point here); empty disables it")
	fl.StringVar(&f.adminAddr, "admin", "127.0.0.1:15000", "admin address (/ready, /healthz); empty disables it")
	fl.StringVar(&f.captureListen, "capture-listen", "", "address that iptables REDIRECTs captured traffic to, e.g. 0.0.0.0:15006")
	fl.StringVar(&f.locality, "locality", "", "this proxy's locality, region/zone/subzone")
	fl.StringVar(&f.network, "network", "", "this proxy's network")
	fl.StringVar(&f.dnsServer, "dns-server", "", "DNS server HOST:PORT for DNS endpoints (default: /etc/resolv.conf)")
	fl.StringVar(&f.policy, "outbound-policy", "REGISTRY_ONLY", "REGISTRY_ONLY refuses what no ServiceEntry declares; ALLOW_ANY passes it through")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.BoolVar(&f.allowInvalid, "allow-invalid", false, "serve the valid documents when some are invalid, logging the findings, instead of refusing to start")
	return cmd
}

// runProxy serves until ctx ends or a listener fails (exit status 1). ready, when set, receives
// the bound addresses once listening (tests use it to learn the :0 ports).
func runProxy(ctx context.Context, cmd *cobra.Command, f *runFlags, ready func(map[string]net.Addr)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	allowAny, err := parsePolicy(f.policy)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return usageError("--log-level: %v", err)
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	res, err := f.src.compile(cmd, 1)
	if err != nil {
		return err
	}
	if err := startupFindings(cmd, log, res, f.allowInvalid); err != nil {
		return err
	}
	resolver, err := resolve.New(resolve.Config{Server: f.dnsServer, Logger: log})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("dns: %w", err)}
	}
	defer resolver.Close()
	p := proxy.New(proxy.Config{
		Namespace: f.src.namespace, Locality: f.locality, Network: f.network,
		AllowAny: allowAny, Resolver: resolver, Logger: log,
	}, res.Snapshot)
	log.Info("registry loaded", "services", len(res.Snapshot.Services), "documents", res.Documents, "errors", res.Errors())

	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	listen := func(name, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return nil, &exitError{code: 2, err: fmt.Errorf("%s listener: %w", name, err)}
		}
		lns = append(lns, ln)
		return ln, nil
	}
	fwd, err := listen("forward proxy", f.listen)
	if err != nil {
		return err
	}
	capt, err := listen("capture", f.captureListen)
	if err != nil {
		return err
	}
	adm, err := listen("admin", f.adminAddr)
	if err != nil {
		return err
	}
	bound := map[string]net.Addr{}
	var wg sync.WaitGroup
	var failMu sync.Mutex
	var failures []string
	serve := func(name string, ln net.Listener, fn func(net.Listener) error) {
		if ln == nil {
			return
		}
		bound[name] = ln.Addr()
		fmt.Fprintf(cmd.OutOrStdout(), "meshentry: %s listening on %s\n", name, ln.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fn(ln)
			if err == nil && ctx.Err() != nil {
				return
			}
			if err == nil {
				err = errors.New("stopped serving")
			}
			log.Error("listener failed; shutting down", "listener", name, "err", err)
			failMu.Lock()
			failures = append(failures, fmt.Sprintf("%s listener: %v", name, err))
			failMu.Unlock()
			cancel()
		}()
	}
	notReady := func() []string {
		failMu.Lock()
		defer failMu.Unlock()
		pending := append([]string(nil), failures...)
		if ctx.Err() != nil {
			pending = append(pending, "shutting down")
		}
		return pending
	}
	serve("forward proxy", fwd, p.ServeForward)
	serve("capture", capt, p.ServeCapture)
	var adminSrv *http.Server
	if adm != nil {
		adminSrv = admin.NewServer(notReady, admin.Timeouts{})
		serve("admin", adm, func(ln net.Listener) error {
			if err := adminSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if ready != nil {
		ready(bound)
	}
	<-ctx.Done()
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = p.Shutdown(shutCtx)
	if adminSrv != nil {
		adminSrv.Shutdown(shutCtx)
	}
	wg.Wait()
	if err != nil {
		log.Warn("shutdown was not clean", "err", err)
	}
	if len(failures) > 0 {
		return &exitError{code: 1, err: errors.New(strings.Join(failures, "; "))}
	}
	return nil
}

// startupFindings refuses a config with errors before anything listens, as nginx -t, Caddy and
// HAProxy do, rather than serving with documents silently missing; allowInvalid serves the valid
// documents instead. Every finding is logged either way.
func startupFindings(cmd *cobra.Command, log *slog.Logger, res *compile.Result, allowInvalid bool) error {
	if n := res.Errors(); n > 0 && !allowInvalid {
		for _, d := range res.Diagnostics {
			fmt.Fprintln(cmd.ErrOrStderr(), d)
		}
		noun := "errors"
		if n == 1 {
			noun = "error"
		}
		return &exitError{code: 1, err: fmt.Errorf("config has %d %s, not serving (fix them, or pass --allow-invalid to serve the valid documents)", n, noun)}
	}
	for _, d := range res.Diagnostics {
		switch d.Level {
		case diag.Error:
			log.Error("document left out", "finding", d.String())
		case diag.Warning:
			log.Warn("config warning", "finding", d.String())
		default:
			log.Info("config note", "finding", d.String())
		}
	}
	return nil
}
