// Package inbound is the server side of mutual TLS between meshentry proxies: a listener that
// terminates mTLS with the proxy's workload identity, accepts any client of the same trust
// domain (Istio's default without an AuthorizationPolicy), and forwards the plaintext to the
// local workload: HTTP per request with x-forwarded-client-cert set as an Istio sidecar sets it,
// anything else as bytes.
package inbound

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/ratelog"
)

// Defaults for the zero fields of Config.
const (
	// DefaultHandshakeTimeout bounds the TLS handshake of one connection, as Envoy's
	// transport_socket_connect_timeout would if Istio set it: a client that connects and stalls
	// must not hold a slot under the cap for long.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxConnections caps the connections one inbound listener holds open at once.
	DefaultMaxConnections = 1024
	// DefaultSniffTimeout is how long a connection whose ALPN did not name HTTP may take to send
	// its first bytes before it is taken for a server-first protocol and piped (the capture
	// listener's default).
	DefaultSniffTimeout = 200 * time.Millisecond
	// DefaultTCPIdleTimeout closes a piped connection after this long without a byte either way
	// (Envoy's tcp_proxy idle_timeout).
	DefaultTCPIdleTimeout = time.Hour
	// DefaultConnectTimeout bounds connecting to the target for a piped connection.
	DefaultConnectTimeout = 5 * time.Second
)

// maxSniff bounds the decrypted bytes read to tell HTTP from other TCP.
const maxSniff = 16 << 10

// ALPN is what the listener offers, in its order of preference: Istio's inbound offers
// "istio-peer-exchange", "h2" and "http/1.1", and an Istio client offers "istio-peer-exchange"
// and "istio" for TCP or the "istio-http/1.x" and "istio-h2" names for HTTP. crypto/tls refuses
// a handshake with no protocol in common, where Envoy just negotiates none, so every name is
// here. "http/1.1" comes before "h2": the target's protocol is not declared, so requests go to
// it in the protocol the client spoke, and a client that can do either gets the one every
// workload serves.
var ALPN = []string{"istio-peer-exchange", "http/1.1", "h2", "istio", "istio-http/1.1", "istio-http/1.0", "istio-h2"}

// Config says what one inbound listener forwards to and how it is bounded.
type Config struct {
	// Target is the local workload's host:port; it receives plaintext.
	Target string
	// Identity presents the proxy's SVID and verifies clients against its trust bundle; it is
	// read at every handshake, so a rotation applies to new connections.
	Identity *identity.Source
	// MaxConnections caps the connections open at once; beyond it a connection is closed when
	// accepted. DefaultMaxConnections when zero; negative means no cap.
	MaxConnections int
	// HandshakeTimeout bounds each TLS handshake; DefaultHandshakeTimeout when zero.
	HandshakeTimeout time.Duration
	// SniffTimeout is DefaultSniffTimeout when zero.
	SniffTimeout time.Duration
	// ConnectTimeout bounds connecting to Target for piped connections; DefaultConnectTimeout
	// when zero. HTTP requests use HTTP.ConnectTimeout.
	ConnectTimeout time.Duration
	// TCPIdleTimeout is DefaultTCPIdleTimeout when zero; negative means never.
	TCPIdleTimeout time.Duration
	// HTTP bounds the HTTP side (heads, idle and stream timeouts) as on the outbound side.
	HTTP httpfwd.Limits
	// Logger receives refusals and failures; slog.Default when nil.
	Logger *slog.Logger
}

// Server serves inbound listeners for one target.
type Server struct {
	cfg  Config
	log  *slog.Logger
	tls  *tls.Config
	http *httpfwd.Server
	// up and upH2 are the target over HTTP/1.1 and over h2c: a request goes in the protocol
	// its client spoke, as Envoy's USE_DOWNSTREAM_PROTOCOL on Istio's inbound clusters for
	// ports whose protocol is detected, so gRPC reaches a gRPC workload.
	up, upH2 httpfwd.Upstream
	ctx      context.Context
	cancel   context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	draining  bool
	conns     sync.WaitGroup
	open      atomic.Int64

	stats   counters
	failLog ratelog.Limiter
}

// New checks cfg and returns a Server; it serves nothing until Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Identity == nil {
		return nil, errors.New("inbound: an identity is required to terminate mutual TLS")
	}
	if _, _, err := net.SplitHostPort(cfg.Target); err != nil {
		return nil, fmt.Errorf("inbound target %q: %w", cfg.Target, err)
	}
	cfg = withDefaults(cfg)
	s := &Server{cfg: cfg, log: cfg.Logger, listeners: map[net.Listener]struct{}{}}
	s.failLog.Rate, s.failLog.Burst = 1, 10
	s.tls = cfg.Identity.ServerConfig()
	s.tls.NextProtos = ALPN
	s.tls.MinVersion = tls.VersionTLS12
	s.up = httpfwd.Upstream{Addr: cfg.Target, Key: cfg.Target}
	s.upH2 = httpfwd.Upstream{Addr: cfg.Target, Key: cfg.Target + " h2c", Protocol: httpfwd.H2C}
	s.http = &httpfwd.Server{Router: s, Limits: cfg.HTTP, Logger: cfg.Logger, ViaToken: viaToken()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.SniffTimeout <= 0 {
		cfg.SniffTimeout = DefaultSniffTimeout
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.TCPIdleTimeout == 0 {
		cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// viaToken names the inbound side in Via apart from the process's outbound servers, so that a
// request a proxy sends to its own inbound listener is not mistaken for a forwarding loop.
func viaToken() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "meshentry-inbound-" + hex.EncodeToString(b[:])
}

// Route sends every request to the target with this hop's x-forwarded-client-cert.
func (s *Server) Route(req *httpfwd.RequestHead, _ int) (httpfwd.Upstream, *httpfwd.Reject) {
	p, ok := req.RemoteAddr.(*peerAddr)
	if !ok {
		// Only Serve's connections reach the engine, and each carries its peer: this is a bug.
		return httpfwd.Upstream{}, &httpfwd.Reject{Status: 500, Reason: "inbound request without a verified peer"}
	}
	up := s.up
	if p.h2 {
		up = s.upH2
	}
	up.Header = p.requestHeader(req)
	return up, nil
}

// Done does nothing: the target is the one local workload, with nothing to balance or eject.
func (s *Server) Done(httpfwd.Upstream, error) {}

// Serve accepts connections on ln until it fails or the server drains, when it returns nil.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isDraining() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of descriptors and the like pass: wait a little and go on.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("inbound accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.admit(c) {
			continue
		}
		go s.handle(c)
	}
}

// admit counts c under the cap, or closes it when the cap is reached or the server drains.
func (s *Server) admit(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		c.Close()
		return false
	}
	if max := s.cfg.MaxConnections; max > 0 && s.open.Load() >= int64(max) {
		s.stats.refusedAtCap.Add(1)
		c.Close()
		if ok, n := s.failLog.Allow(time.Now()); ok {
			s.log.Warn("inbound connection refused at the connection cap", "max_connections", max,
				"remote", c.RemoteAddr().String(), "suppressed", n)
		}
		return false
	}
	s.open.Add(1)
	s.stats.accepted.Add(1)
	s.conns.Add(1)
	return true
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Drain stops accepting at once: the listeners are closed before it returns, and HTTP
// connections finish their request in flight and close.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.http.Drain()
}

// Shutdown drains and waits for every connection to end, or for ctx to end, when what is
// still open is closed; it returns ctx's error in that case.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Shutdown(ctx) }()
	select {
	case <-done:
		<-httpDone
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-httpDone
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once, and waits for them to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.draining = true
	for ln := range s.listeners {
		ln.Close()
	}
	s.mu.Unlock()
	s.cancel()
	err := s.http.Close()
	s.conns.Wait()
	return err
}
