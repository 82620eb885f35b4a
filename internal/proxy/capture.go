package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"github.com/meshentry/meshentry/internal/origdst"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/sniff"
)

// maxSniff bounds the bytes read to classify a captured connection: a ClientHello or request head.
const maxSniff = 16 << 10

// capturedConn presents the original destination as the local address, which is what the HTTP
// engine hands the router for a captured connection.
type capturedConn struct {
	*sniff.PrefixConn
	orig *net.TCPAddr
}

func (c *capturedConn) LocalAddr() net.Addr { return c.orig }

// newPrefixed replays bytes already read from c before the rest of it.
func newPrefixed(c net.Conn, prefix []byte) net.Conn {
	return sniff.NewPrefixConn(c, append([]byte(nil), prefix...))
}

// serveCaptured routes one redirected connection: TLS by SNI, plain HTTP by Host (request by
// request) where the port's listener is an HTTP one, anything else by its original destination
// address and port. Only destinations without a declared protocol are sniffed, as in Istio: a
// declared TCP port is piped at once, so server-first protocols (SMTP, MySQL) see no delay, and a
// declared HTTP port goes straight to the HTTP engine. The caller closes c.
func (p *Proxy) serveCaptured(c net.Conn) {
	tc, ok := tcpConn(c)
	if !ok {
		return
	}
	orig, err := p.origDst(tc)
	if err != nil {
		if errors.Is(err, origdst.ErrNotRedirected) {
			p.log.Info("closed a connection that was not redirected to the capture port", "remote", c.RemoteAddr().String())
		} else {
			p.log.Warn("original destination unknown", "remote", c.RemoteAddr().String(), "err", err)
		}
		return
	}
	orig = netip.AddrPortFrom(orig.Addr().Unmap(), orig.Port())
	t := p.table.Load()
	switch t.snap.ScopedListenerFamily(orig.Addr(), uint32(orig.Port()), p.cfg.Namespace, t.scope) {
	case registry.FamilyTCP:
		p.pipeCaptured(c, sniff.NewPrefixConn(c, nil), t, orig, sniff.Result{Kind: sniff.TCP})
		return
	case registry.FamilyHTTP:
		p.serveCapturedHTTP(c, sniff.NewPrefixConn(c, nil), orig)
		return
	}
	res, err := sniff.Sniff(c, p.cfg.SniffTimeout, maxSniff)
	if err != nil {
		p.log.Debug("captured connection failed while sniffing", "orig", orig, "err", err)
		return
	}
	if (res.Kind == sniff.HTTP || res.Kind == sniff.HTTP2) && t.snap.ScopedRoutesHTTPByHost(orig.Addr(), uint32(orig.Port()), p.cfg.Namespace, t.scope) {
		p.serveCapturedHTTP(c, res.Conn(), orig)
		return
	}
	// Anything else, HTTP to a destination a TCP listener owns included, is carried as opaque bytes.
	p.pipeCaptured(c, res.Conn(), t, orig, res)
}

// serveCapturedHTTP hands a captured connection to the HTTP engine, which routes it request by
// request. The engine drains its connections itself (and closes them when the drain is cut
// short), so this one leaves the set of pipes Shutdown closes, and gets a context it does not
// cancel.
func (p *Proxy) serveCapturedHTTP(c net.Conn, pc *sniff.PrefixConn, orig netip.AddrPort) {
	p.release(c)
	p.capture.ServeConn(context.Background(), &capturedConn{PrefixConn: pc, orig: net.TCPAddrFromAddrPort(orig)})
}

// pipeCaptured matches a captured connection carried as bytes (TCP, or TLS by its SNI) and pipes
// it to the upstream; pc replays what sniffing read.
func (p *Proxy) pipeCaptured(c net.Conn, pc *sniff.PrefixConn, t *table, orig netip.AddrPort, res sniff.Result) {
	rec := p.startConn(c, orig.String(), res.SNI)
	if rec != nil {
		rec.rec.DownstreamLocal = net.TCPAddrFromAddrPort(orig) // where the application meant to go
	}
	up, addr, m, err := p.dialCaptured(p.pipeCtx, t, orig, res.SNI, res.Kind == sniff.TLS)
	if err != nil {
		rec.failed(p.serviceOf(m), dialFlags(err))
		return
	}
	svc := p.serviceOf(m)
	if !p.hold(up) {
		rec.failed(svc, 0)
		return
	}
	defer p.release(up)
	defer p.counts.connOpened(addr).connClosed()
	rec.opened(svc, addr)
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("forward", "orig", orig, "sni", res.SNI, "kind", res.Kind, "cluster", m.Cluster, "upstream", addr)
	}
	rec.closed(p.pipe(pc, up))
}
