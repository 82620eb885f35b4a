package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// An egress gateway (internal/gateway) accepts traffic on its own listeners and picks the
// destination with the VirtualServices bound to it; these hooks reach that destination as the
// sidecar reaches a service: its endpoints, its DestinationRule (TLS origination included) and
// the proxy's health, limits and telemetry. The destination is matched by name on any protocol,
// as a CONNECT authority is, since a gateway may send the HTTP it terminated to a port declared
// HTTPS (TLS origination). A destination of resolution NONE resolves the host itself: a gateway
// has no original destination.

// errNoDestination marks a gateway route to a host no ServiceEntry visible to the gateway declares.
var errNoDestination = errors.New("no ServiceEntry visible to the gateway declares the route's destination")

// GatewayHTTP routes a request a gateway accepted to host:port, the destination its
// VirtualService route chose; attempt is as in httpfwd.Router.Route.
func (p *Proxy) GatewayHTTP(req *httpfwd.RequestHead, host string, port uint32, attempt int) (httpfwd.Upstream, *httpfwd.Reject) {
	t := p.table.Load()
	m := p.gatewayMatch(t, host, port)
	up, rej := p.gatewayUpstream(t, m, req, host, port, attempt)
	if rej != nil {
		if m.Cluster != "" {
			rej.Service = t.services.of(m)
		}
		if rej.Flags == 0 && rej.Status == 503 {
			rej.Flags = telemetry.NoHealthyUpstream
			if attempt > 0 {
				rej.Flags = telemetry.UpstreamConnectFailure | telemetry.RetriesExhausted
			}
		}
		return up, rej
	}
	up.Service = t.services.of(m)
	return up, nil
}

// gatewayMatch finds the service port of a gateway route's destination.
func (p *Proxy) gatewayMatch(t *table, host string, port uint32) registry.Match {
	return t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: host, Port: port, Protocol: registry.TrafficAny}, p.cfg.AllowAny)
}

func (p *Proxy) gatewayUpstream(t *table, m registry.Match, req *httpfwd.RequestHead, host string, port uint32, attempt int) (httpfwd.Upstream, *httpfwd.Reject) {
	name := registry.NormalizeHost(host)
	switch {
	case m.Outcome == registry.BlackHole:
		return httpfwd.Upstream{}, p.gatewayRefusal(req.RequestID, host, port)
	case m.Outcome == registry.Passthrough, m.Service.Resolution == registry.ResolutionNone,
		m.Service.Resolution == registry.ResolutionDynamicDNS:
		if !registry.IsHostName(name) {
			return httpfwd.Upstream{}, p.rejectFor(errNoName, req.RequestID, host, port, m.Cluster)
		}
		up, rej := p.originalUpstream(destination{host: name, port: port}, m.Cluster, req.RequestID)
		return p.secureOriginal(t, m, name, req.RequestID, up, rej)
	}
	if r := t.route(m.Service, m.Port, p); r.picker.Passthrough() {
		up, rej := p.originalUpstream(destination{host: name, port: port}, m.Cluster, req.RequestID)
		return p.secureOriginal(t, m, name, req.RequestID, up, rej)
	}
	return p.endpointUpstream(t, m, req, attempt)
}

// gatewayRefusal answers a route whose destination no visible ServiceEntry declares: 503, as
// Envoy answers a route to a cluster it does not have (NC).
func (p *Proxy) gatewayRefusal(id []byte, host string, port uint32) *httpfwd.Reject {
	p.sec.refused.Add(1)
	reason := fmt.Sprintf("%v: %s:%d (namespace %s)", errNoDestination, host, port, p.cfg.Namespace)
	p.sec.refusalLog("not forwarded", withRequestID(id, "via", "gateway", "host", host, "port", port, "err", reason)...)
	return &httpfwd.Reject{Status: 503, Reason: reason, Body: "meshentry: " + reason + "\n", Flags: telemetry.NoRoute}
}

// GatewayDone reports how a request GatewayHTTP routed went, for passive health checking.
func (p *Proxy) GatewayDone(up httpfwd.Upstream, err error) {
	(&httpRouter{p: p}).Done(up, err)
}

// GatewayPipe connects to host:port, the destination a gateway's tls or tcp route (or an
// AUTO_PASSTHROUGH SNI) chose, and pipes client to it until either side ends; sni labels the
// telemetry. It owns client; the drain waits for it as for a CONNECT tunnel.
func (p *Proxy) GatewayPipe(client net.Conn, host string, port uint32, sni string) {
	if !p.begin(client) {
		client.Close()
		return
	}
	defer p.end(client)
	rec := p.startConn(client, hostPort(host, port), sni)
	t := p.table.Load()
	m := p.gatewayMatch(t, host, port)
	dst := destination{host: registry.NormalizeHost(host), port: port, src: addrOf(client.RemoteAddr())}
	up, addr, err := p.dialMatch(p.pipeCtx, t, m, dst)
	if err != nil {
		if m.Outcome == registry.BlackHole {
			err = fmt.Errorf("%w: %s:%d", errNoDestination, host, port)
		}
		p.logFailure(err, "gateway", host, port, m.Cluster)
		rec.failed(p.serviceOf(m), dialFlags(err))
		return
	}
	svc := p.serviceOf(m)
	if !p.hold(up) {
		rec.failed(svc, 0)
		return
	}
	defer p.counts.connOpened(addr).connClosed()
	defer func() {
		up.Close()
		p.release(up)
	}()
	rec.opened(svc, addr)
	if p.log.Enabled(p.pipeCtx, slog.LevelDebug) {
		p.log.Debug("gateway pipe", "host", host, "port", port, "sni", sni, "cluster", m.Cluster, "upstream", addr)
	}
	rec.closed(p.pipe(client, up))
}
