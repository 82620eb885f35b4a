package proxy

import (
	"errors"
	"net"

	"github.com/meshentry/meshentry/internal/relay"
)

// pipe relays bytes both ways between a client and its upstream (CONNECT tunnels, captured TLS and
// TCP) until both directions end, closing both tunnels idle for TCPIdleTimeout, and returns the
// bytes sent upstream and downstream, and whether the idle timeout ended it. A drain cut short
// cancels pipeCtx, which ends every pipe.
func (p *Proxy) pipe(client, upstream net.Conn) (up, down int64, idle bool) {
	up, down, err := relay.Pipe(p.pipeCtx, client, upstream, relay.Options{IdleTimeout: p.cfg.TCPIdleTimeout})
	return up, down, p.pipeEnded(client, upstream, err)
}

// connectEstablished answers a CONNECT whose upstream is connected.
var connectEstablished = []byte("HTTP/1.1 200 Connection established\r\n\r\n")

// pipeConnect is pipe for a CONNECT tunnel: the relay writes the 200 itself, with the upstream's
// first bytes when they are already there. greeted is false when the client left before it.
func (p *Proxy) pipeConnect(client, upstream net.Conn) (up, down int64, idle, greeted bool) {
	up, down, err := relay.Pipe(p.pipeCtx, client, upstream, relay.Options{IdleTimeout: p.cfg.TCPIdleTimeout, Greeting: connectEstablished})
	return up, down, p.pipeEnded(client, upstream, err), !errors.Is(err, relay.ErrGreeting)
}

// pipeEnded counts and logs a pipe the idle timeout ended, and reports whether it did.
func (p *Proxy) pipeEnded(client, upstream net.Conn, err error) (idle bool) {
	idle = errors.Is(err, relay.ErrIdleTimeout)
	if idle {
		p.stats.idleClosed.Add(1)
		p.log.Debug("closed an idle tunnel", "remote", client.RemoteAddr().String(),
			"upstream", upstream.RemoteAddr().String(), "idle_timeout", p.cfg.TCPIdleTimeout)
	}
	return idle
}
