package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	vroute "github.com/meshentry/meshentry/internal/route"
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

// GatewayHTTP carries out hr, the http route a VirtualService bound to a gateway gave req:
// its actions as at a sidecar (redirect, direct response, rewrite, retries, timeout, fault,
// mirror, headers, CORS), and its destination picked by weight, a subset narrowing it to the
// subset's endpoints. port is the gateway server's, taken by a destination that names none;
// attempt is as in httpfwd.Router.Route.
func (p *Proxy) GatewayHTTP(req *httpfwd.RequestHead, hr *vroute.HTTPRoute, port uint32, attempt int) (httpfwd.Upstream, *httpfwd.Reject) {
	t := p.table.Load()
	act := t.vsActionsFor(hr, p).forRequest(pathOf(req))
	if hr.Redirect != nil || hr.DirectResponse != nil {
		return httpfwd.Upstream{Actions: act}, nil
	}
	d := hr.Pick(pickNumber(req.RequestID))
	if d == nil {
		reason := fmt.Sprintf("http route %s has no destination", hr)
		return httpfwd.Upstream{}, &httpfwd.Reject{Status: 503, Reason: reason, Flags: telemetry.NoRoute, Body: "meshentry: " + reason + "\n"}
	}
	if d.Port != 0 {
		port = d.Port
	}
	m := p.gatewayMatch(t, d.Host, port)
	up, svc, rej := p.gatewayUpstream(t, m, req, d, port, attempt)
	if rej != nil {
		if rej.Service == nil {
			rej.Service = svc
		}
		if rej.Flags == 0 && rej.Status == 503 {
			rej.Flags = telemetry.NoHealthyUpstream
			if attempt > 0 {
				rej.Flags = telemetry.UpstreamConnectFailure | telemetry.RetriesExhausted
			}
		}
		return up, rej
	}
	up.Service, up.Actions = svc, act
	return up, nil
}

// gatewayMatch finds the service port of a gateway route's destination.
func (p *Proxy) gatewayMatch(t *table, host string, port uint32) registry.Match {
	return t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: host, Port: port, Protocol: registry.TrafficAny}, p.cfg.AllowAny)
}

// gatewayUpstream reaches destination d (matched as m) and says which service telemetry
// labels it with.
func (p *Proxy) gatewayUpstream(t *table, m registry.Match, req *httpfwd.RequestHead, d *vroute.Destination, port uint32, attempt int) (httpfwd.Upstream, *telemetry.Service, *httpfwd.Reject) {
	name := registry.NormalizeHost(d.Host)
	switch {
	case m.Outcome == registry.BlackHole:
		return httpfwd.Upstream{}, clusterService(d), p.gatewayRefusal(req.RequestID, d.Host, port)
	case m.Outcome == registry.Passthrough, m.Service.Resolution == registry.ResolutionNone,
		m.Service.Resolution == registry.ResolutionDynamicDNS:
		up, rej := p.originalUpstream(destination{host: name, port: port}, m.Cluster, req.RequestID)
		up, rej = p.secureOriginal(t, m, name, req.RequestID, up, rej)
		return up, t.services.of(m), rej
	}
	r := t.route(m.Service, m.Port, p)
	svc := t.services.of(m)
	if d.Subset != "" {
		se, err := t.subsetRoute(m.Service, m.Port, d.Subset, p)
		if err != nil {
			p.logRequestFailure(err, req.RequestID, "gateway", d.Host, port, d.Cluster)
			reason := fmt.Sprintf("subset %q of %s is not defined by a DestinationRule (cluster %s)", d.Subset, d.Host, d.Cluster)
			return httpfwd.Upstream{}, clusterService(d), &httpfwd.Reject{Status: 503, Reason: reason, Flags: telemetry.NoRoute,
				Body: "meshentry: " + reason + "\n"}
		}
		r = se.route
		svc = t.services.of(registry.Match{Outcome: registry.Matched, Service: m.Service, Port: se.port, Cluster: se.port.Cluster})
	}
	if r.picker.Passthrough() {
		up, rej := p.originalUpstream(destination{host: name, port: port}, m.Cluster, req.RequestID)
		up, rej = p.secureOriginal(t, m, name, req.RequestID, up, rej)
		return up, svc, rej
	}
	up, rej := p.endpointUpstream(r, req, attempt)
	return up, svc, rej
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

// GatewayPipe connects to host:port (subset narrowing it when set), the destination a
// gateway's tls or tcp route (or an AUTO_PASSTHROUGH SNI) chose, and pipes client to it until
// either side ends; sni labels the telemetry. It owns client; the drain waits for it as for a
// CONNECT tunnel.
func (p *Proxy) GatewayPipe(client net.Conn, host string, port uint32, subset, sni string) {
	if !p.begin(client) {
		client.Close()
		return
	}
	defer p.end(client)
	rec := p.startConn(client, hostPort(host, port), sni)
	t := p.table.Load()
	m := p.gatewayMatch(t, host, port)
	dst := destination{host: registry.NormalizeHost(host), port: port, src: addrOf(client.RemoteAddr())}
	up, addr, err := p.gatewayDial(t, &m, dst, subset)
	if err != nil {
		if m.Outcome == registry.BlackHole {
			err = fmt.Errorf("%w: %s:%d", errNoDestination, host, port)
		}
		p.logFailure(err, "gateway", host, port, m.Cluster)
		rec.failed(p.serviceOf(m), dialFlags(err))
		return
	}
	svc := p.serviceOf(m)
	done, ok := p.holdUpstream(up, addr)
	if !ok {
		rec.failed(svc, 0)
		return
	}
	defer done()
	rec.opened(svc, addr)
	if p.log.Enabled(p.pipeCtx, slog.LevelDebug) {
		p.log.Debug("gateway pipe", "host", host, "port", port, "sni", sni, "cluster", m.Cluster, "upstream", addr)
	}
	rec.closed(p.pipe(client, up))
}

// gatewayDial dials the destination of a gateway pipe, through the subset's route when there
// is one (m then names the subset's cluster).
func (p *Proxy) gatewayDial(t *table, m *registry.Match, dst destination, subset string) (net.Conn, string, error) {
	endpoints := m.Outcome == registry.Matched && m.Service.Resolution != registry.ResolutionNone &&
		m.Service.Resolution != registry.ResolutionDynamicDNS
	if subset == "" || !endpoints {
		return p.dialMatch(p.pipeCtx, t, *m, dst)
	}
	se, err := t.subsetRoute(m.Service, m.Port, subset, p)
	if err != nil {
		return nil, "", err
	}
	m.Port, m.Cluster = se.port, se.port.Cluster
	return p.dialRoute(p.pipeCtx, t, *m, se.route, dst)
}
