package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"

	"github.com/meshentry/meshentry/internal/identity"
	"github.com/meshentry/meshentry/internal/route"
	"github.com/meshentry/meshentry/internal/sniff"
)

// connAddr is a gateway connection's remote address, carrying what the router needs: the
// server port, the server TLS chose (nil for plaintext, where each request picks one by Host)
// and the client's verified SPIFFE ID after ISTIO_MUTUAL, for logs.
type connAddr struct {
	net.Addr
	port   uint32
	server *Server
	peer   string
}

// gwConn presents a connAddr as the remote address.
type gwConn struct {
	net.Conn
	addr *connAddr
}

func (c *gwConn) RemoteAddr() net.Addr { return c.addr }

// handle serves one accepted connection as its port's servers say; it owns c.
func (g *Gateway) handle(c net.Conn, port uint32) {
	st := g.current()
	l := st.ports[port]
	if l == nil {
		// The port's servers went away with a reload.
		g.stats.NoServer.Add(1)
		c.Close()
		return
	}
	switch l.Servers[0].Kind {
	case KindHTTP:
		g.http.ServeConn(g.ctx, &gwConn{Conn: c, addr: &connAddr{Addr: c.RemoteAddr(), port: port}})
		return
	case KindTCP:
		g.pipeTCP(st, c, port, l.Servers[0], "")
		return
	}
	res, err := sniff.Sniff(c, g.cfg.HandshakeTimeout, maxHello)
	if err != nil || res.Kind != sniff.TLS {
		g.stats.HandshakeFailures.Add(1)
		g.log.Debug("gateway connection sent no ClientHello", "port", port, "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	conn := res.Conn()
	srv := l.BySNI(res.SNI)
	if srv == nil {
		g.refuseConn(conn, "no server of the port serves this SNI", port, res.SNI)
		g.stats.NoServer.Add(1)
		return
	}
	switch srv.Kind {
	case KindPassthrough:
		g.passthrough(st, conn, port, srv, res.SNI)
	case KindAutoPassthrough:
		g.autoPassthrough(conn, port, srv, res.SNI)
	default:
		g.terminate(st, conn, port, srv, res.SNI)
	}
}

// refuseConn closes a connection no route takes, logging why at debug level (a scan of the
// port must not flood the log; the counters tell).
func (g *Gateway) refuseConn(c net.Conn, why string, port uint32, sni string) {
	g.log.Debug("gateway closed a connection", "why", why, "port", port, "sni", sni, "remote", c.RemoteAddr().String())
	c.Close()
}

// passthrough routes a TLS connection by its SNI with the tls routes bound to srv's Gateway,
// without terminating it.
func (g *Gateway) passthrough(st *state, c net.Conn, port uint32, srv *Server, sni string) {
	r := st.table.TLS(sni, port, netip.Addr{}, srv.Gateway)
	if r == nil || !srv.AdmitsRoute(sni, namespaceOf(r.VirtualService)) {
		g.stats.NotFound.Add(1)
		g.refuseConn(c, "no tls route bound to "+srv.Gateway+" takes this SNI", port, sni)
		return
	}
	d := r.Pick(g.pick.Add(1))
	if d == nil {
		g.stats.NotFound.Add(1)
		g.refuseConn(c, "the tls route has no destination", port, sni)
		return
	}
	g.cfg.Proxy.GatewayPipe(c, d.Host, destPort(d, port), d.Subset, sni)
}

// autoPassthrough sends a connection whose SNI names an Istio cluster to that service,
// without a VirtualService, as Istio's AUTO_PASSTHROUGH does.
func (g *Gateway) autoPassthrough(c net.Conn, port uint32, srv *Server, sni string) {
	a, ok := ParseAutoSNI(sni)
	if !ok {
		g.stats.NotFound.Add(1)
		g.refuseConn(c, "the SNI is not of the form outbound_.PORT_.SUBSET_.HOST", port, sni)
		return
	}
	if _, ok := srv.Accepts(a.Host); !ok {
		g.stats.NotFound.Add(1)
		g.refuseConn(c, "the SNI's host is not among the server's hosts", port, sni)
		return
	}
	g.cfg.Proxy.GatewayPipe(c, a.Host, a.Port, a.Subset, sni)
}

// terminate ends TLS with srv's credentials or the proxy's identity and serves what is inside:
// HTTP through the router, or bytes by tcp routes.
func (g *Gateway) terminate(st *state, c net.Conn, port uint32, srv *Server, sni string) {
	cfg := st.tls[srv]
	if cfg == nil {
		g.refuseConn(c, "the server's TLS cannot be set up", port, sni)
		return
	}
	tc := tls.Server(c, cfg)
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		g.stats.HandshakeFailures.Add(1)
		g.log.Debug("gateway TLS handshake failed", "server", srv.Where(), "sni", sni, "remote", c.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	addr := &connAddr{Addr: c.RemoteAddr(), port: port, server: srv}
	if id, err := identity.PeerID(tc.ConnectionState()); err == nil {
		addr.peer = id.String()
	}
	if srv.Kind == KindTerminateTCP {
		g.pipeTCP(st, &gwConn{Conn: tc, addr: addr}, port, srv, sni)
		return
	}
	g.http.ServeConn(g.ctx, &gwConn{Conn: tc, addr: addr})
}

// pipeTCP routes opaque bytes (a TCP server, or TLS terminated on a TLS server) with the tcp
// routes bound to srv's Gateway.
func (g *Gateway) pipeTCP(st *state, c net.Conn, port uint32, srv *Server, sni string) {
	r := st.table.TCP(port, netip.Addr{}, srv.Gateway)
	var d *route.Destination
	if r != nil {
		d = r.Pick(g.pick.Add(1))
	}
	if d == nil {
		g.stats.NotFound.Add(1)
		g.refuseConn(c, "no tcp route bound to "+srv.Gateway+" takes the port", port, sni)
		return
	}
	g.cfg.Proxy.GatewayPipe(c, d.Host, destPort(d, port), d.Subset, sni)
}

// destPort is the destination's port, or the server port when the route names none.
func destPort(d *route.Destination, port uint32) uint32 {
	if d.Port != 0 {
		return d.Port
	}
	return port
}

// namespaceOf is the namespace of a "ns/name".
func namespaceOf(nsName string) string {
	for i := 0; i < len(nsName); i++ {
		if nsName[i] == '/' {
			return nsName[:i]
		}
	}
	return nsName
}
