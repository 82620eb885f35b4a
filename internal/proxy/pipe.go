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
	idle = errors.Is(err, relay.ErrIdleTimeout)
	if idle {
		p.stats.idleClosed.Add(1)
		p.log.Debug("closed an idle tunnel", "remote", client.RemoteAddr().String(),
			"upstream", upstream.RemoteAddr().String(), "idle_timeout", p.cfg.TCPIdleTimeout)
	}
	return up, down, idle
}
