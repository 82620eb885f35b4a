package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DefaultMaxTCPConns bounds the DNS-over-TCP connections open at once.
const DefaultMaxTCPConns = 256

// Listen binds UDP and TCP on the same address; for port 0 the TCP port follows the UDP one,
// trying again a few times when another socket holds it.
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 5 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("dns listen tcp %s: %w", addr, lastErr)
}

// limitListener closes connections beyond max at once, counting them, rather than letting
// them queue where a client cannot tell a full server from a slow one.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	refused *atomic.Uint64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			l.refused.Add(1)
			c.Close()
		}
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// Serve answers on pc (UDP) and ln (TCP, at most maxTCP connections; 0 means
// DefaultMaxTCPConns) until ctx ends; it returns the first serve error.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener, maxTCP int) error {
	if maxTCP <= 0 {
		maxTCP = DefaultMaxTCPConns
	}
	ln = &limitListener{Listener: ln, sem: make(chan struct{}, maxTCP), refused: &s.tcpRefused}
	// Timeouts as miekg's defaults, written out: a client that stalls holds a slot 2 s.
	tcp := &dns.Server{Listener: ln, Handler: s, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		IdleTimeout: func() time.Duration { return 8 * time.Second }}
	errc := make(chan error, 2)
	started := make(chan struct{})
	tcp.NotifyStartedFunc = func() { close(started) }
	go func() { errc <- tcp.ActivateAndServe() }()
	// Shutdown refuses a server that has not started, so wait for it first.
	select {
	case <-started:
	case err := <-errc:
		pc.Close()
		ln.Close()
		return fmt.Errorf("dns serve tcp: %w", err)
	}
	udpDone := make(chan error, 1)
	go func() { udpDone <- s.serveUDP(pc) }()
	var first error
	select {
	case <-ctx.Done():
	case err := <-errc:
		first = fmt.Errorf("dns serve tcp: %w", err)
	case err := <-udpDone:
		first = fmt.Errorf("dns serve udp: %w", err)
		udpDone <- nil
	}
	pc.Close()
	if err := <-udpDone; err != nil && first == nil {
		first = fmt.Errorf("dns serve udp: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := tcp.ShutdownContext(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) && first == nil && ctx.Err() == nil {
		first = err
	}
	return first
}
