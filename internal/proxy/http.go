package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	vroute "github.com/meshentry/meshentry/internal/route"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// httpRouter routes each HTTP request by its Host, as a sidecar's HTTP route table does.
type httpRouter struct {
	p *Proxy
	// captured requests arrived by iptables REDIRECT: their port and IP are the original destination's.
	captured bool
}

// route decides where req goes by t, leaving the match in *mp for Route's telemetry labels.
func (h *httpRouter) route(t *table, req *httpfwd.RequestHead, attempt int, mp *registry.Match) (httpfwd.Upstream, *httpfwd.Reject) {
	p := h.p
	dst := destination{host: req.Host, port: uint32(req.Port)}
	if h.captured {
		if a, ok := req.LocalAddr.(*net.TCPAddr); ok {
			dst.orig = a.AddrPort()
			dst.port = uint32(dst.orig.Port())
		}
	} else {
		dst.port = requestPort(req)
		if !validHost(req.Host) {
			return httpfwd.Upstream{}, p.rejectFor(errInvalidHost, req.RequestID, req.Host, dst.port, "")
		}
	}
	q := registry.Query{Namespace: p.cfg.Namespace, Host: req.Host, Port: dst.port, Protocol: registry.TrafficHTTP, Scope: t.scope}
	if dst.orig.IsValid() {
		q.IP = dst.orig.Addr().Unmap()
	}
	*mp = t.snap.Match(q, p.cfg.AllowAny)
	if t.vs != nil && mp.Outcome == registry.Matched {
		if up, rej, ok := h.viaVirtualService(t, req, attempt, mp, dst); ok {
			return up, rej
		}
	}
	return h.forMatch(t, req, attempt, *mp, dst)
}

// requestPort is the port a forward-proxied request asks for: its own, else its scheme's.
func requestPort(req *httpfwd.RequestHead) uint32 {
	switch {
	case req.Port != 0:
		return uint32(req.Port)
	case req.Scheme == "https":
		return 443
	}
	return 80
}

// hinted is the route loopHTTP.Serves left in req for its attempt 0, the one route would reach
// by the same match: a STATIC service's endpoints, no VirtualService binding the host in t,
// a route of t (no reload came between, so Serves asked the same VirtualServices). nil when
// there is none, or when this Router routes otherwise (captured requests go by their original
// destination). A route's hint is taken either way, as it serves one Route only; a rule's is
// left for viaVirtualService (hintedRule).
func (h *httpRouter) hinted(t *table, req *httpfwd.RequestHead, attempt int) *route {
	r, ok := req.RouteHint.(*route)
	if !ok {
		return nil // none, or a rule's, which viaVirtualService takes (hintedRule)
	}
	req.RouteHint = nil
	if r == nil || attempt != 0 || h.captured || r.table != t {
		return nil
	}
	return r
}

// forMatch routes req to the service port m matched, or where the application sent it when
// that is the service's way (resolution NONE, DYNAMIC_DNS, loadBalancer PASSTHROUGH).
func (h *httpRouter) forMatch(t *table, req *httpfwd.RequestHead, attempt int, m registry.Match, dst destination) (httpfwd.Upstream, *httpfwd.Reject) {
	p := h.p
	switch {
	case m.Outcome == registry.BlackHole:
		return httpfwd.Upstream{}, p.refuse(req.Host, dst.port, req.RequestID)
	case m.Outcome == registry.Passthrough, m.Service.Resolution == registry.ResolutionNone:
		if !h.captured {
			d, err := requested(m, req.Host, dst.port)
			if err != nil {
				return httpfwd.Upstream{}, p.rejectFor(err, req.RequestID, req.Host, dst.port, m.Cluster)
			}
			dst = d
		}
		up, rej := p.originalUpstream(dst, m.Cluster, req.RequestID)
		return p.secureOriginal(t, m, registry.NormalizeHost(req.Host), req.RequestID, up, rej)
	case m.Service.Resolution == registry.ResolutionDynamicDNS:
		// The name asked for is resolved even for a captured request: DYNAMIC_DNS routes by Host.
		name := registry.NormalizeHost(req.Host)
		if !registry.IsHostName(name) {
			return httpfwd.Upstream{}, p.rejectFor(errNoName, req.RequestID, req.Host, dst.port, m.Cluster)
		}
		up, rej := p.originalUpstream(destination{host: name, port: dst.port}, m.Cluster, req.RequestID)
		return p.secureOriginal(t, m, name, req.RequestID, up, rej)
	}
	if r := t.route(m.Service, m.Port, p); r.picker.Passthrough() {
		// loadBalancer PASSTHROUGH: where the application sent it, as for resolution NONE.
		if !h.captured {
			d, err := requested(m, req.Host, dst.port)
			if err != nil || !d.orig.IsValid() && d.host == "" {
				return httpfwd.Upstream{}, p.rejectFor(firstErr(err, errUndeclaredIP), req.RequestID, req.Host, dst.port, m.Cluster)
			}
			dst = d
		}
		return p.originalUpstream(dst, m.Cluster, req.RequestID)
	}
	return p.endpointUpstream(t.route(m.Service, m.Port, p), req, attempt)
}

// firstErr returns a when set, else b.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// endpointUpstream picks an endpoint of r, a route of a STATIC or DNS service, for req.
func (p *Proxy) endpointUpstream(r *route, req *httpfwd.RequestHead, attempt int) (httpfwd.Upstream, *httpfwd.Reject) {
	if err := r.tls.refusal(); err != nil {
		return httpfwd.Upstream{}, p.tlsRefusal(err, req.RequestID)
	}
	if attempt == 0 {
		req.RouteState = 0
	}
	// req.RouteState marks the endpoints this request already tried, so a retry goes to the next
	// one even when every endpoint is ejected and health no longer steers the pick. A DNS endpoint
	// that connected to a failing address stays eligible while it has other addresses to offer.
	retry := attempt > 0
	exclude := func(i int) bool {
		return i < 64 && req.RouteState&(1<<i) != 0 || retry && r.exhausted(i, r.health)
	}
	var lastErr error
	for n := range r.eps {
		i, ok, setCookie := r.pickFor(req, exclude)
		if !ok && n == 0 && (req.RetriedStatus != 0 || req.RetriedReset) {
			// Every endpoint was tried and one answered a status the policy retries, or
			// failed after it connected: try again among them all, as Envoy does once
			// previous_hosts found no other host, rather than answer that none connected.
			i, ok, setCookie = r.pickFor(req, nil)
		}
		if !ok {
			break
		}
		if i < 64 && r.eps[i].up.Key != "" {
			req.RouteState |= 1 << i
		}
		up, err := r.upstream(p.ctx, i, p.cfg.Resolver, r.health, retry)
		if err == nil {
			if ap, err := upstreamAddr(&up); err == nil && p.sec.isSelf(ap) {
				return httpfwd.Upstream{}, p.rejectFor(errLoop, req.RequestID, req.Host, uint32(req.Port), r.port.Cluster)
			}
			p.counts.requestRouted(up.Key)
			if r.policy != nil {
				r.picker.Begin(i) // Done ends it, for LEAST_REQUEST
			}
			if setCookie != "" {
				up.ResponseFields = []httpfwd.Field{{Name: "Set-Cookie", Value: setCookie}}
			}
			return up, nil
		}
		// The name did not resolve: count it against the endpoint and try another one now.
		p.reportFailure(r.health, r.eps[i].key)
		lastErr = err
		if i < 64 {
			req.RouteState |= 1 << i
		}
	}
	if lastErr != nil {
		return httpfwd.Upstream{}, p.rejectFor(lastErr, req.RequestID, req.Host, uint32(req.Port), r.port.Cluster)
	}
	return httpfwd.Upstream{}, p.noEndpointLeft(r, req.RouteState)
}

// Done implements httpfwd.Router: connect failures count against the endpoint, a completed
// exchange clears its failure streak.
func (h *httpRouter) Done(up httpfwd.Upstream, err error) {
	if strings.HasPrefix(up.Key, originalKeyPrefix) {
		// The application's own destination: no endpoint of ours to judge.
		return
	}
	if h.policyDone(up, err) {
		return
	}
	h.p.counts.requestDone(up.Key, err)
	switch {
	case err == nil:
		h.p.reportSuccess(h.p.health, up.Key)
	case errors.Is(err, httpfwd.ErrConnect):
		h.p.reportFailure(h.p.health, up.Key)
	}
}

// refusal logs (rate-limited) and returns why a host is refused under REGISTRY_ONLY; via names
// the path ("HTTP" or "CONNECT") in the log, id the request id the client is answered with.
func (p *Proxy) refusal(host string, port uint32, via string, id []byte) string {
	p.sec.refused.Add(1)
	reason := fmt.Sprintf("no ServiceEntry visible to namespace %s declares host %q on port %d", p.cfg.Namespace, host, port)
	p.sec.refusalLog("refused", withRequestID(id, "host", host, "port", port, "reason", reason, "via", via, "cluster", registry.BlackHoleCluster)...)
	return reason
}

// withRequestID appends the request id to log arguments, when there is one: an operator
// handed the id from an answer finds the line by it.
func withRequestID(id []byte, args ...any) []any {
	if len(id) == 0 {
		return args
	}
	return append(args, "request_id", string(id))
}

// refuse is the HTTP answer for a host no visible ServiceEntry declares, under REGISTRY_ONLY.
func (p *Proxy) refuse(host string, port uint32, id []byte) *httpfwd.Reject {
	reason := p.refusal(host, port, "HTTP", id)
	return &httpfwd.Reject{Status: 502, Reason: reason, Flags: telemetry.NoRoute,
		Body: "meshentry: " + reason + "; the outbound policy REGISTRY_ONLY refuses it\n"}
}

// failure is what the client is told about a request or tunnel that will not be forwarded: a
// status and a reason naming at most the host and cluster. Endpoint addresses and resolver errors
// stay in the log (see logFailure), since they describe the inside of the mesh.
func failure(err error, host string, port uint32, cluster string) (status int, reason string) {
	switch {
	case errors.Is(err, errLoop):
		// 508 Loop Detected (RFC 5842): the request would come back to this proxy.
		return 508, fmt.Sprintf("forwarding loop: %s:%d leads back to this proxy", host, port)
	case errors.Is(err, errInvalidHost):
		return 400, "the host is neither a DNS name nor an IP address"
	case errors.Is(err, errRefused):
		return 502, fmt.Sprintf("no ServiceEntry declares %s:%d (outbound policy REGISTRY_ONLY)", host, port)
	case errors.Is(err, errUndeclaredIP):
		return 502, fmt.Sprintf("%s does not declare the IP address %s; name the host instead", cluster, host)
	case errors.Is(err, errNoName):
		return 502, cluster + " has resolution DYNAMIC_DNS and the request names no host to resolve"
	case errors.Is(err, httpfwd.ErrOverflow):
		return 503, "the connection pool limit of " + cluster + " is reached"
	}
	if cluster == "" {
		cluster = host
	}
	return 503, "no upstream of " + cluster + " could be reached"
}

// logFailure counts a failure of a connection that has no request id (capture) and logs its
// detail, rate-limited.
func (p *Proxy) logFailure(err error, via, host string, port uint32, cluster string) {
	p.logRequestFailure(err, nil, via, host, port, cluster)
}

// logRequestFailure counts a failure and logs its detail, rate-limited, with the request id
// the client is answered with.
func (p *Proxy) logRequestFailure(err error, id []byte, via, host string, port uint32, cluster string) {
	switch {
	case errors.Is(err, errLoop):
		p.sec.loops.Add(1)
	case errors.Is(err, errInvalidHost):
		p.sec.invalid.Add(1)
	case errors.Is(err, errRefused), errors.Is(err, errUndeclaredIP), errors.Is(err, errNoName):
		p.sec.refused.Add(1)
	}
	p.sec.refusalLog("not forwarded", withRequestID(id, "via", via, "host", host, "port", port, "cluster", cluster, "err", err)...)
}

// rejectFor answers an HTTP request that will not be forwarded because of err; id is its
// request id, which the engine adds to the body.
func (p *Proxy) rejectFor(err error, id []byte, host string, port uint32, cluster string) *httpfwd.Reject {
	p.logRequestFailure(err, id, "HTTP", host, port, cluster)
	status, reason := failure(err, host, port, cluster)
	return &httpfwd.Reject{Status: status, Reason: reason, Body: "meshentry: " + reason + "\n", Flags: refusalFlags(err)}
}

// originalKeyPrefix marks pool keys of upstreams the application chose itself (NONE, ALLOW_ANY,
// DYNAMIC_DNS), which passive health checking leaves alone.
const originalKeyPrefix = "original|"

// originalUpstream sends the request where the application addressed it (resolution NONE,
// ALLOW_ANY, DYNAMIC_DNS), through the guarded dial. A name is resolved here as well as at dial
// time (the second lookup is a cache hit) so a name leading back to the proxy gets 508 at once
// rather than a connect failure. id is the request id, for the log.
func (p *Proxy) originalUpstream(dst destination, cluster string, id []byte) (httpfwd.Upstream, *httpfwd.Reject) {
	if dst.orig.IsValid() {
		if p.sec.isSelf(dst.orig) {
			return httpfwd.Upstream{}, p.rejectFor(errLoop, id, dst.orig.Addr().String(), dst.port, cluster)
		}
		addr := dst.orig.String()
		return httpfwd.Upstream{Addr: addr, Key: originalKeyPrefix + addr, Dial: func(ctx context.Context) (net.Conn, error) {
			return p.dialGuarded(ctx, "tcp", addr)
		}}, nil
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ConnectTimeout)
	addrs, err := p.cfg.Resolver.Lookup(ctx, dst.host)
	cancel()
	if err != nil {
		return httpfwd.Upstream{}, p.rejectFor(err, id, dst.host, dst.port, cluster)
	}
	for _, a := range addrs {
		if p.sec.isSelf(netipAddrPort(a, dst.port)) {
			return httpfwd.Upstream{}, p.rejectFor(errLoop, id, dst.host, dst.port, cluster)
		}
	}
	hp := hostPort(dst.host, dst.port)
	return httpfwd.Upstream{Key: originalKeyPrefix + hp, Endpoint: hp, Dial: func(ctx context.Context) (net.Conn, error) {
		c, _, err := p.dialOriginal(ctx, dst)
		return c, err
	}}, nil
}

// handleConnect serves a CONNECT tunnel: the authority is matched against any port protocol, the
// upstream is dialled, and bytes are piped; TLS inside stays the application's.
func (p *Proxy) handleConnect(ctx context.Context, head *httpfwd.RequestHead, client net.Conn, buffered []byte) {
	if !p.begin(client) {
		client.Close()
		return
	}
	defer p.end(client)
	port := uint32(head.Port)
	if port == 0 {
		port = 443
	}
	host := head.Host
	var rec *connRecord
	if p.cfg.Telemetry != nil {
		// The authority's text only for a record someone reads.
		rec = p.startConn(client, hostPort(host, port), "")
	}
	up, addr, m, err := p.connectUpstream(client, host, port, head.RequestID)
	if err != nil {
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
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("tunnel", "host", host, "port", port, "cluster", m.Cluster, "upstream", addr)
	}
	src := client
	if len(buffered) > 0 {
		src = newPrefixed(client, buffered)
	}
	// The relay writes the 200 (pipeConnect), so that a server-first upstream's first bytes
	// share its write.
	sent, received, idle, greeted := p.pipeConnect(src, up)
	if !greeted {
		rec.failed(svc, telemetry.DownstreamClosed)
		return
	}
	rec.closed(sent, received, idle)
}

// connectUpstream matches and dials a CONNECT authority, answering the client itself, with
// the request id, when the tunnel will not be opened; it returns why.
func (p *Proxy) connectUpstream(client net.Conn, host string, port uint32, id []byte) (net.Conn, string, registry.Match, error) {
	if !validHost(host) {
		p.connectFailed(client, errInvalidHost, id, host, port, "")
		return nil, "", registry.Match{}, errInvalidHost
	}
	t := p.table.Load()
	m := t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: host, Port: port, Protocol: registry.TrafficAny, Scope: t.scope}, p.cfg.AllowAny)
	if m.Outcome == registry.BlackHole {
		writeStatus(client, "403 Forbidden", p.refusal(host, port, "CONNECT", id), id)
		return nil, "", m, errRefused
	}
	dst, err := requested(m, host, port)
	dst.src = addrOf(client.RemoteAddr())
	if err == nil {
		// The authority stands for the SNI of a tls route (the tunnel's bytes are the client's).
		var d *vroute.Destination
		if m, d, err = p.l4Routed(t, m, host, port, connectAddr(m, host)); d != nil && err == nil {
			dst = routedDestination(d, netip.AddrPort{}, dst.src)
		}
	}
	if err == nil {
		// Dialled under pipeCtx, which a drain cut short cancels, so a dial cannot outlast it.
		var up net.Conn
		var addr string
		if up, addr, err = p.dialMatch(p.pipeCtx, t, m, dst); err == nil {
			return up, addr, m, nil
		}
	}
	p.connectFailed(client, err, id, host, port, m.Cluster)
	return nil, "", m, err
}

// connectFailed logs why a tunnel is not opened and answers with a generic reason.
func (p *Proxy) connectFailed(client net.Conn, err error, id []byte, host string, port uint32, cluster string) {
	p.logRequestFailure(err, id, "CONNECT", host, port, cluster)
	client.Write(connectRefusal(nil, err, id, host, port, cluster))
}

// connectRefusal appends to dst the answer to a CONNECT that will not be tunnelled because of
// err, with a generic reason: what connectFailed writes, and the event loop's tunnels too.
func connectRefusal(dst []byte, err error, id []byte, host string, port uint32, cluster string) []byte {
	status, reason := failure(err, host, port, cluster)
	if status == 502 {
		// A tunnel the policy refuses is answered as the other CONNECT refusals are.
		status = 403
	}
	return appendStatus(dst, statusLine(status), reason, id)
}

// statusLine is the status line text for the few statuses a CONNECT refusal uses.
func statusLine(status int) string {
	switch status {
	case 400:
		return "400 Bad Request"
	case 403:
		return "403 Forbidden"
	case 508:
		return "508 Loop Detected"
	}
	return "503 Service Unavailable"
}

// writeStatus answers a CONNECT that will not be tunnelled (appendStatus), in one write.
func writeStatus(c net.Conn, status, reason string, id []byte) {
	c.Write(appendStatus(nil, status, reason, id))
}

// appendStatus appends to dst the answer to a CONNECT that will not be tunnelled, naming its
// request id in an X-Request-Id field and in the body, as the engine's own answers do.
func appendStatus(dst []byte, status, reason string, id []byte) []byte {
	clean := strings.NewReplacer("\r", " ", "\n", " ")
	reason = clean.Replace(reason)
	body, idField := "meshentry: "+reason+"\n", ""
	if len(id) > 0 {
		// The engine took the id as a field value already; cleaning it again costs nothing.
		rid := clean.Replace(string(id))
		body = "meshentry: " + reason + "; request id " + rid + "\n"
		idField = "X-Request-Id: " + rid + "\r\n"
	}
	return fmt.Appendf(dst, "HTTP/1.1 %s\r\n%sX-Meshentry-Reason: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, idField, reason, len(body), body)
}
