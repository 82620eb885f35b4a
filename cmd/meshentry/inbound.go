package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/admin"
	"github.com/meshentry/meshentry/internal/inbound"
	"github.com/meshentry/meshentry/internal/proxy"
)

// inboundFlags configure the inbound listeners that terminate mutual TLS from other proxies.
type inboundFlags struct {
	specs            []string
	maxConnections   int
	handshakeTimeout time.Duration
}

func (f *inboundFlags) register(fl *pflag.FlagSet) {
	fl.StringArrayVar(&f.specs, "inbound", nil, "LISTEN=TARGET, repeatable: terminate mutual TLS on LISTEN with the workload identity (clients need a certificate of the same trust domain) and forward plaintext to TARGET, HTTP per request with x-forwarded-client-cert, anything else as bytes; needs --identity-dir")
	fl.IntVar(&f.maxConnections, "inbound-max-connections", inbound.DefaultMaxConnections, "connections one --inbound listener holds open at once; beyond it a connection is closed when accepted (0 or -1: no cap)")
	fl.DurationVar(&f.handshakeTimeout, "inbound-handshake-timeout", inbound.DefaultHandshakeTimeout, "the TLS handshake of one inbound connection")
}

// inboundSpec is one --inbound value.
type inboundSpec struct{ listen, target string }

// name is how logs, the serve group and /ready call the listener.
func (s inboundSpec) name() string { return "inbound " + s.listen + "=" + s.target }

// parseInbound reads the --inbound values; each side must be a host:port, and a listen address
// may be given once.
func parseInbound(values []string) ([]inboundSpec, error) {
	var out []inboundSpec
	seen := map[string]bool{}
	for _, v := range values {
		listen, target, ok := strings.Cut(v, "=")
		if !ok {
			return nil, usageError("--inbound %q: want LISTEN=TARGET, e.g. 127.0.0.1:16443=127.0.0.1:8080", v)
		}
		for _, a := range []string{listen, target} {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				return nil, usageError("--inbound %q: %q is not a host:port", v, a)
			}
		}
		if seen[listen] && !strings.HasSuffix(listen, ":0") {
			return nil, usageError("--inbound %q: %s is given twice", v, listen)
		}
		seen[listen] = true
		out = append(out, inboundSpec{listen: listen, target: target})
	}
	return out, nil
}

// inboundSet is the running inbound listeners.
type inboundSet struct {
	specs   []inboundSpec
	lns     []net.Listener
	servers []*inbound.Server
}

// openInbound binds every --inbound listener (a port in use fails the start, exit status 2) and
// makes its server, with the HTTP and TCP limits of cfg and cfg.Identity, the proxy's workload
// identity (--identity-dir). With no --inbound it returns an empty set.
func openInbound(f *inboundFlags, cfg *proxy.Config, log *slog.Logger) (*inboundSet, error) {
	specs, err := parseInbound(f.specs)
	if err != nil || len(specs) == 0 {
		return &inboundSet{}, err
	}
	if f.handshakeTimeout <= 0 {
		return &inboundSet{}, usageError("--inbound-handshake-timeout must be positive, got %v", f.handshakeTimeout)
	}
	set := &inboundSet{specs: specs}
	src := cfg.Identity
	if src == nil {
		return &inboundSet{}, usageError("--inbound needs --identity-dir: mutual TLS is terminated with the workload identity")
	}
	maxConns := f.maxConnections
	if maxConns == 0 {
		maxConns = -1 // as the help says: 0 is no cap, not the package default
	}
	for _, sp := range specs {
		srv, err := inbound.New(inbound.Config{Target: sp.target, Identity: src, MaxConnections: maxConns,
			HandshakeTimeout: f.handshakeTimeout, ConnectTimeout: cfg.ConnectTimeout, TCPIdleTimeout: cfg.TCPIdleTimeout,
			HTTP: cfg.HTTP, Logger: log.With("listener", sp.name())})
		if err == nil {
			var ln net.Listener
			// No TCP keep-alive on accepted connections, as the other listeners.
			if ln, err = (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", sp.listen); err == nil {
				set.lns = append(set.lns, ln)
				set.servers = append(set.servers, srv)
				continue
			}
			err = &exitError{code: 2, err: fmt.Errorf("%s listener: %w", sp.name(), err)}
		}
		set.close()
		return &inboundSet{}, err
	}
	return set, nil
}

// serve starts every listener in g, so a failed one stops the proxy and shows in /ready.
func (s *inboundSet) serve(g *serveGroup) {
	for i, srv := range s.servers {
		g.serve(s.specs[i].name(), s.lns[i], srv.Serve)
	}
}

// adminListeners names the listeners for /listeners.
func (s *inboundSet) adminListeners() []admin.Listener {
	var out []admin.Listener
	for i, ln := range s.lns {
		out = append(out, admin.Listener{Name: "inbound_" + s.specs[i].target, Address: ln.Addr().String()})
	}
	return out
}

// drain stops every listener accepting at once and drains them beside the proxy; wait returns
// when they have drained or timeout closed what was left.
func (s *inboundSet) drain(log *slog.Logger, timeout time.Duration) (wait func()) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	var wg sync.WaitGroup
	for i, srv := range s.servers {
		srv.Drain()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
				log.Info("inbound drain timeout reached; closed what was still open", "listener", s.specs[i].name())
			}
		}()
	}
	return func() {
		wg.Wait()
		cancel()
		s.close()
	}
}

// close closes the servers and their listeners; it is safe after drain.
func (s *inboundSet) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
	for _, srv := range s.servers {
		srv.Close()
	}
}
