// Package xdsclient is the config source of `meshentry run --config-source xds://ADDR`: an ADS
// stream to a `meshentry xds` (or any MCP-over-xDS server) subscribed to the five Istio
// collections, whose responses are compiled as files are (same validation, same snapshot) and
// ACKed, or NACKed with the findings while the last good config keeps serving.
package xdsclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/source"
)

// Defaults, Envoy's where Envoy has one.
const (
	// DefaultInitialFetchTimeout is Envoy's initial_fetch_timeout: how long startup waits for the
	// first config before serving an empty one.
	DefaultInitialFetchTimeout = 15 * time.Second
	// DefaultBackoffBase and DefaultBackoffMax are Envoy's xDS stream retry back-off bounds.
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
	// DefaultMaxMessageBytes bounds one response; a registry of 10,000 ServiceEntries is a few MiB.
	DefaultMaxMessageBytes = 64 << 20
	// maxNackFindings bounds the findings one NACK carries; the log and Status keep them all.
	maxNackFindings = 20
)

// Config says where the client connects and how it behaves.
type Config struct {
	// Addr is the server's HOST:PORT.
	Addr string
	// TLS, when set, secures the connection; nil is plaintext (loopback).
	TLS *tls.Config
	// NodeID names this proxy to the server (Istio's sidecar~IP~NAME.NS~NS.svc.cluster.local form).
	NodeID string
	// Namespace is given to resources whose name has no "namespace/".
	Namespace string
	// InitialFetchTimeout is the startup wait for a first complete config; 0 means the default.
	InitialFetchTimeout time.Duration
	// BackoffBase and BackoffMax bound the jittered exponential wait between connection attempts.
	BackoffBase, BackoffMax time.Duration
	// MaxMessageBytes bounds one response; 0 means the default.
	MaxMessageBytes int
	// Logger receives one line per accepted or refused response and per lost stream; nil discards.
	Logger *slog.Logger
	// Compile holds options for every compile, as source.Config.Compile.
	Compile []compile.Option
}

// Client streams config from an xDS server; Open starts it and Run hands on what it accepts.
type Client struct {
	cfg  Config
	log  *slog.Logger
	conn *grpc.ClientConn
	ads  discovery.AggregatedDiscoveryServiceClient

	mu      sync.Mutex
	status  source.Status
	stats   Stats
	first   chan *compile.Result // the startup config, once
	pending *compile.Result      // accepted after startup, not yet applied; the newest wins
	notify  chan struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// Stats count what the stream did since startup.
type Stats struct {
	// Acks and Nacks count the responses accepted and refused.
	Acks, Nacks uint64
	// Streams counts the streams opened; Failures those that ended in error.
	Streams, Failures uint64
	// Oversize counts responses refused by the transport for exceeding MaxMessageBytes.
	Oversize uint64
	// Connected says a stream is open and the server has answered on it (Envoy's
	// control_plane.connected_state).
	Connected bool
}

// Open connects to the server and waits for the first complete config, at most
// InitialFetchTimeout, after which an empty config is returned (as Envoy starts without one) and
// the real one follows through Run when the server answers. The stream lives until ctx ends or
// Run returns. The result is returned whatever its errors, as source.New returns it.
func Open(ctx context.Context, cfg Config) (*Client, *compile.Result, error) {
	if cfg.InitialFetchTimeout <= 0 {
		cfg.InitialFetchTimeout = DefaultInitialFetchTimeout
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = DefaultBackoffBase
	}
	if cfg.BackoffMax < cfg.BackoffBase {
		cfg.BackoffMax = max(DefaultBackoffMax, cfg.BackoffBase)
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxMessageBytes)))
	if err != nil {
		return nil, nil, fmt.Errorf("xds client %s: %w", cfg.Addr, err)
	}
	c := &Client{cfg: cfg, log: cfg.Logger, conn: conn, ads: discovery.NewAggregatedDiscoveryServiceClient(conn),
		first: make(chan *compile.Result, 1), notify: make(chan struct{}, 1), done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("config_source", c.source())
	c.status.LastResult = source.Loaded
	ctx, c.cancel = context.WithCancel(ctx)
	st := newStreamState(c)
	go func() {
		defer close(c.done)
		defer conn.Close()
		st.loop(ctx)
	}()
	select {
	case res := <-c.first:
		return c, res, nil
	case <-ctx.Done():
		c.Close()
		return nil, nil, fmt.Errorf("xds client %s: %w", cfg.Addr, context.Cause(ctx))
	}
}

// source is the prefix of every document's File: xds://ADDR.
func (c *Client) source() string {
	if c.cfg.TLS != nil {
		return "xdss://" + c.cfg.Addr
	}
	return "xds://" + c.cfg.Addr
}

// Run calls apply with each config accepted after startup, from Run's goroutine, until ctx ends;
// then it stops the stream and waits for it.
func (c *Client) Run(ctx context.Context, apply func(*compile.Result)) {
	defer c.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		case <-c.notify:
			c.mu.Lock()
			res := c.pending
			c.pending = nil
			c.mu.Unlock()
			if res == nil {
				continue
			}
			apply(res)
			c.mu.Lock()
			c.serving(res)
			c.status.Accepted++
			c.mu.Unlock()
		}
	}
}

// Close stops the stream and waits for it to end.
func (c *Client) Close() {
	c.cancel()
	<-c.done
}

// Reload does nothing: the server pushes every change, there are no files to read again.
func (c *Client) Reload() {
	c.log.Info("config comes from xDS; the server pushes changes, nothing to re-read")
}

// Status returns the source's state in the file watcher's terms.
func (c *Client) Status() source.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Stats returns the stream's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// serving records the counts of the config that now serves; c.mu is held.
func (c *Client) serving(res *compile.Result) {
	c.status.Version = res.Snapshot.Version
	c.status.LoadedAt = time.Now()
	c.status.Documents, c.status.Services = res.Documents, len(res.Snapshot.Services)
	c.status.Diagnostics = res.Diagnostics
}

// publish hands an accepted config on: as the startup config when Open still waits, else to Run.
func (c *Client) publish(res *compile.Result, startup bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Acks++
	c.status.LastAttempt, c.status.LastResult = time.Now(), source.Accepted
	if startup {
		c.serving(res)
		c.status.LastResult = source.Loaded
		c.first <- res
		return
	}
	c.pending = res
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// refused records a NACK; the serving config is left as it is.
func (c *Client) refused(reason string, diags []diag.Diagnostic) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Nacks++
	c.status.Refused++
	c.status.LastAttempt, c.status.LastResult = time.Now(), source.Refused
	c.status.LastError, c.status.LastErrorAt = reason, c.status.LastAttempt
	c.status.LastErrorDiagnostics = diags
}

// errStreamEnded is returned by a session when the server closed the stream cleanly.
var errStreamEnded = errors.New("stream closed by the server")
