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
)

// httpRouter routes each HTTP request by its Host, as a sidecar's HTTP route table does.
type httpRouter struct {
	p *Proxy
	// captured requests arrived by iptables REDIRECT: their port and IP are the original destination's.
	captured bool
}

// Route implements httpfwd.Router.
func (h *httpRouter) Route(req *httpfwd.RequestHead, attempt int) (httpfwd.Upstream, *httpfwd.Reject) {
	p := h.p
	t := p.table.Load()
	dst := destination{host: req.Host, port: uint32(req.Port)}
	if h.captured {
		if a, ok := req.LocalAddr.(*net.TCPAddr); ok {
			dst.orig = a.AddrPort()
			dst.port = uint32(dst.orig.Port())
		}
	} else if dst.port == 0 {
		dst.port = 80
		if req.Scheme == "https" {
			dst.port = 443
		}
	}
	q := registry.Query{Namespace: p.cfg.Namespace, Host: req.Host, Port: dst.port, Protocol: registry.TrafficHTTP}
	if dst.orig.IsValid() {
		q.IP = dst.orig.Addr().Unmap()
	}
	m := t.snap.Match(q, p.cfg.AllowAny)
	switch {
	case m.Outcome == registry.BlackHole:
		return httpfwd.Upstream{}, p.refuse(req.Host, dst.port)
	case m.Outcome == registry.Passthrough, m.Service.Resolution == registry.ResolutionNone:
		return p.originalUpstream(dst), nil
	}
	r := t.route(m.Service, m.Port, p)
	if attempt == 0 {
		req.RouteState = 0
	}
	// req.RouteState marks the endpoints this request already tried, so a retry goes to the next
	// one even when every endpoint is ejected and health no longer steers the pick. A DNS endpoint
	// that connected to a failing address stays eligible while it has other addresses to offer.
	retry := attempt > 0
	exclude := func(i int) bool {
		return i < 64 && req.RouteState&(1<<i) != 0 || retry && r.exhausted(i, p.health)
	}
	var lastErr error
	for range r.eps {
		i, ok := r.picker.Pick(exclude)
		if !ok {
			break
		}
		if i < 64 && r.eps[i].up.Key != "" {
			req.RouteState |= 1 << i
		}
		up, err := r.upstream(p.ctx, i, p.cfg.Resolver, p.health, retry)
		if err == nil {
			return up, nil
		}
		// The name did not resolve: count it against the endpoint and try another one now.
		p.reportFailure(r.eps[i].key)
		lastErr = err
		if i < 64 {
			req.RouteState |= 1 << i
		}
	}
	if lastErr != nil {
		return httpfwd.Upstream{}, &httpfwd.Reject{Status: 503, Reason: lastErr.Error(), Body: "meshentry: " + lastErr.Error() + "\n"}
	}
	return httpfwd.Upstream{}, &httpfwd.Reject{Status: 503, Reason: "no endpoint left to try for " + r.port.Cluster,
		Body: "meshentry: every endpoint of " + r.port.Cluster + " failed to connect\n"}
}

// Done implements httpfwd.Router: connect failures count against the endpoint, a completed
// exchange clears its failure streak.
func (h *httpRouter) Done(up httpfwd.Upstream, err error) {
	if strings.HasPrefix(up.Key, originalKeyPrefix) {
		// The application's own destination: no endpoint of ours to judge.
		return
	}
	switch {
	case err == nil:
		h.p.reportSuccess(up.Key)
	case errors.Is(err, httpfwd.ErrConnect):
		h.p.reportFailure(up.Key)
	}
}

// refusal logs and returns why a host is refused under REGISTRY_ONLY; via names the path
// ("HTTP" or "CONNECT") in the log.
func (p *Proxy) refusal(host string, port uint32, via string) string {
	reason := fmt.Sprintf("no ServiceEntry visible to namespace %s declares host %q on port %d", p.cfg.Namespace, host, port)
	p.log.Info("refused", "host", host, "port", port, "reason", reason, "via", via, "cluster", registry.BlackHoleCluster)
	return reason
}

// refuse is the HTTP answer for a host no visible ServiceEntry declares, under REGISTRY_ONLY.
func (p *Proxy) refuse(host string, port uint32) *httpfwd.Reject {
	reason := p.refusal(host, port, "HTTP")
	return &httpfwd.Reject{Status: 502, Reason: reason,
		Body: "meshentry: " + reason + "; the outbound policy REGISTRY_ONLY refuses it\n"}
}

// originalKeyPrefix marks pool keys of upstreams the application chose itself (NONE, ALLOW_ANY),
// which passive health checking leaves alone.
const originalKeyPrefix = "original|"

// originalUpstream sends the request where the application addressed it (resolution NONE, ALLOW_ANY).
func (p *Proxy) originalUpstream(dst destination) httpfwd.Upstream {
	if dst.orig.IsValid() {
		addr := dst.orig.String()
		return httpfwd.Upstream{Addr: addr, Key: originalKeyPrefix + addr}
	}
	hp := hostPort(dst.host, dst.port)
	return httpfwd.Upstream{Key: originalKeyPrefix + hp, Dial: func(ctx context.Context) (net.Conn, error) {
		c, _, err := p.dialOriginal(ctx, dst)
		return c, err
	}}
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
	t := p.table.Load()
	m := t.snap.Match(registry.Query{Namespace: p.cfg.Namespace, Host: host, Port: port, Protocol: registry.TrafficAny}, p.cfg.AllowAny)
	if m.Outcome == registry.BlackHole {
		writeStatus(client, "403 Forbidden", p.refusal(host, port, "CONNECT"))
		return
	}
	dst := destination{host: host, port: port}
	if a, err := netip.ParseAddr(host); err == nil {
		dst.orig = netip.AddrPortFrom(a, uint16(port))
	}
	// Dialled under pipeCtx, which Shutdown cancels at once, so a dial in progress cannot hold it up.
	up, addr, err := p.dialMatch(p.pipeCtx, t, m, dst)
	if err != nil {
		p.log.Warn("CONNECT upstream failed", "host", host, "port", port, "cluster", m.Cluster, "err", err)
		writeStatus(client, "503 Service Unavailable", err.Error())
		return
	}
	if !p.hold(up) {
		return
	}
	defer func() {
		up.Close()
		p.release(up)
	}()
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("tunnel", "host", host, "port", port, "cluster", m.Cluster, "upstream", addr)
	}
	src := client
	if len(buffered) > 0 {
		src = newPrefixed(client, buffered)
	}
	p.pipe(src, up)
}

// writeStatus answers a CONNECT that will not be tunnelled.
func writeStatus(c net.Conn, status, reason string) {
	reason = strings.NewReplacer("\r", " ", "\n", " ").Replace(reason)
	body := "meshentry: " + reason + "\n"
	fmt.Fprintf(c, "HTTP/1.1 %s\r\nX-Meshentry-Reason: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", status, reason, len(body), body)
}
