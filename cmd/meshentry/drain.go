package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/proxy"
)

// The drain on SIGTERM follows Istio's sidecar: /ready answers 503 at once (notReady sees the
// ended context), the proxy stops accepting and drains (see proxy.Shutdown), and what is still
// open at --drain-timeout is closed. Reaching the timeout is the plan for long-lived tunnels,
// not a failure: the exit status is 0 either way, as pilot-agent's is after
// terminationDrainDuration. A second signal abandons the drain with status 1, as Caddy and
// most servers treat a repeated interrupt as a forced stop.

// forcedExitStatus is the exit status when a second signal cuts the drain off.
const forcedExitStatus = 1

// adminGrace is how long the admin server may take to finish its own requests once the proxy
// has drained; it serves /ready and /healthz throughout the drain.
const adminGrace = time.Second

// drainFlags configure the drain.
type drainFlags struct {
	timeout time.Duration
}

func (d *drainFlags) register(fl *pflag.FlagSet) {
	fl.DurationVar(&d.timeout, "drain-timeout", 20*time.Second, "on SIGTERM or SIGINT, how long CONNECT tunnels, captured TCP/TLS connections and HTTP requests in flight may take to finish before they are closed (Istio's terminationDrainDuration); 0 closes them at once; a second signal exits at once")
}

func (d *drainFlags) validate() error {
	if d.timeout < 0 {
		return usageError("--drain-timeout must not be negative, got %v", d.timeout)
	}
	return nil
}

// notifyDrain returns a context that ends at the first SIGTERM or SIGINT, which starts the
// drain; a second one exits the process at once. stop releases the signals.
func notifyDrain(cmd *cobra.Command) (ctx context.Context, stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, release := drainOnSignal(cmd.Context(), sigs, os.Exit, cmd.ErrOrStderr())
	return ctx, func() {
		signal.Stop(sigs)
		release()
	}
}

// drainOnSignal returns a context that ends when parent does or the first signal arrives on
// sigs; a signal after that and before stop calls exit(forcedExitStatus), since the operator
// asked twice. It takes the channel and exit as arguments so that tests need no real signal.
func drainOnSignal(parent context.Context, sigs <-chan os.Signal, exit func(int), stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	stopped := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case sig := <-sigs:
				// Checked here rather than by which case ran first, so that a signal right
				// after the parent began the drain counts as the second.
				if ctx.Err() != nil {
					fmt.Fprintf(stderr, "meshentry: %v during the drain: exiting at once with status %d\n", sig, forcedExitStatus)
					exit(forcedExitStatus)
					return
				}
				fmt.Fprintf(stderr, "meshentry: %v: draining (a second signal exits at once)\n", sig)
				cancel()
			case <-stopped:
				return
			}
		}
	}()
	return ctx, func() {
		close(stopped)
		<-finished
		cancel()
	}
}

// drainProxy runs the shutdown sequence once the serving context ended: the proxy drains for
// up to timeout, then the admin server, which answered /ready with 503 all along, stops.
func drainProxy(log *slog.Logger, p *proxy.Proxy, adminSrv *http.Server, timeout time.Duration) {
	log.Info("draining", "drain_timeout", timeout)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Info("drain timeout reached; closed what was still open", "took", time.Since(start).Round(time.Millisecond), "err", err)
	} else {
		log.Info("drained", "took", time.Since(start).Round(time.Millisecond))
	}
	if adminSrv != nil {
		actx, acancel := context.WithTimeout(context.Background(), adminGrace)
		defer acancel()
		if err := adminSrv.Shutdown(actx); err != nil {
			adminSrv.Close()
		}
	}
}
