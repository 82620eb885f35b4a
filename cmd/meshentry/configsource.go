package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/source"
	"github.com/meshentry/meshentry/internal/source/xdsclient"
)

// configSource is where `run` gets its config: the -f files (source.Watcher) or an xDS server
// (xdsclient.Client). Run hands on each accepted config, Reload is SIGHUP, Status feeds the
// admin API and the metrics.
type configSource interface {
	Run(ctx context.Context, apply func(*compile.Result))
	Reload()
	Status() source.Status
}

// configSourceFlags choose an xDS server as the config source instead of -f.
type configSourceFlags struct {
	url                 string
	nodeID              string
	caFile              string
	initialFetchTimeout time.Duration
	backoffBase         time.Duration
	backoffMax          time.Duration
	maxMessageBytes     int
}

func (c *configSourceFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&c.url, "config-source", "", "take the config from a `meshentry xds` server instead of -f: xds://HOST:PORT (plaintext; keep it on loopback) or xdss://HOST:PORT (TLS; mutual TLS with --identity-dir); the last good config keeps serving while the server is away")
	fl.StringVar(&c.nodeID, "xds-node-id", "", "node id sent to the xDS server (default: Istio's sidecar~IP~HOSTNAME.NAMESPACE~NAMESPACE.svc.cluster.local)")
	fl.StringVar(&c.caFile, "xds-ca-file", "", "PEM roots that an xdss:// server's certificate must chain to, without --identity-dir (default: the system roots)")
	fl.DurationVar(&c.initialFetchTimeout, "xds-initial-fetch-timeout", xdsclient.DefaultInitialFetchTimeout, "how long startup waits for the first config from the xDS server before serving an empty one (Envoy's initial_fetch_timeout)")
	fl.DurationVar(&c.backoffBase, "xds-backoff-base", xdsclient.DefaultBackoffBase, "first wait before reconnecting to the xDS server; doubled after each failure, jittered")
	fl.DurationVar(&c.backoffMax, "xds-backoff-max", xdsclient.DefaultBackoffMax, "longest wait between reconnection attempts to the xDS server")
	fl.IntVar(&c.maxMessageBytes, "xds-max-message-bytes", xdsclient.DefaultMaxMessageBytes, "largest xDS response accepted; a larger one ends the stream, counted, and the last good config keeps serving")
}

// loadXDS opens the xDS config source given by --config-source; -f is refused beside it, so
// that no one wonders which of the two a document came from.
func loadXDS(ctx context.Context, f *runFlags, log *slog.Logger, opts ...compile.Option) (configSource, *compile.Result, error) {
	c := &f.configSource
	if len(f.src.files) > 0 {
		return nil, nil, usageError("--config-source and -f exclude each other: the config comes from one place")
	}
	if c.initialFetchTimeout <= 0 || c.backoffBase <= 0 || c.backoffMax < c.backoffBase || c.maxMessageBytes <= 0 {
		return nil, nil, usageError("--xds-initial-fetch-timeout, --xds-backoff-base and --xds-max-message-bytes must be positive, --xds-backoff-max at least the base")
	}
	scheme, addr, ok := strings.Cut(c.url, "://")
	if _, _, err := net.SplitHostPort(addr); !ok || err != nil || (scheme != "xds" && scheme != "xdss") {
		return nil, nil, usageError("--config-source %q: want xds://HOST:PORT or xdss://HOST:PORT", c.url)
	}
	cfg := xdsclient.Config{Addr: addr, NodeID: c.nodeID, Namespace: f.src.namespace, InitialFetchTimeout: c.initialFetchTimeout,
		BackoffBase: c.backoffBase, BackoffMax: c.backoffMax, MaxMessageBytes: c.maxMessageBytes, Logger: log, Compile: opts}
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID(f.src.namespace)
	}
	if scheme == "xdss" {
		var err error
		if cfg.TLS, err = xdsTLS(f, addr, log); err != nil {
			return nil, nil, &exitError{code: 2, err: err}
		}
	}
	log.Info("waiting for the config from the xDS server", "config_source", c.url, "node", cfg.NodeID,
		"initial_fetch_timeout", c.initialFetchTimeout)
	cl, res, err := xdsclient.Open(ctx, cfg)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	return cl, res, nil
}

// xdsTLS is mutual TLS with the workload identity when there is one (the server's SPIFFE ID
// must be of the same trust domain), else server-authenticated TLS against --xds-ca-file or the
// system roots. The identity is read once: a rotation reaches new xDS connections after a restart.
func xdsTLS(f *runFlags, addr string, log *slog.Logger) (*tls.Config, error) {
	if f.identity.dir != "" {
		src, err := identity.NewSource(identity.Options{Dir: f.identity.dir, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("xds identity: %w", err)
		}
		return src.ClientConfig(), nil
	}
	host, _, _ := net.SplitHostPort(addr)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if f.configSource.caFile != "" {
		pem, err := os.ReadFile(f.configSource.caFile)
		if err != nil {
			return nil, fmt.Errorf("--xds-ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--xds-ca-file %s: no PEM certificate", f.configSource.caFile)
		}
	}
	return cfg, nil
}

// defaultNodeID builds Istio's sidecar node id from this host's name and first non-loopback IP.
func defaultNodeID(ns string) string {
	host, _ := os.Hostname()
	ip := "127.0.0.1"
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				ip = n.IP.String()
				break
			}
		}
	}
	return fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, host, ns, ns)
}

// loadConfigSource opens the config source the flags name: the xDS server of --config-source,
// or the -f files.
func loadConfigSource(ctx context.Context, cmd *cobra.Command, f *runFlags, log *slog.Logger, opts ...compile.Option) (configSource, *compile.Result, error) {
	if f.configSource.url != "" {
		return loadXDS(ctx, f, log, opts...)
	}
	w, res, err := loadSource(cmd, f, log, opts...)
	if err != nil {
		return nil, nil, err
	}
	return w, res, nil
}
