package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
)

// destination is what the application asked for: a named host and port (forward proxy) and/or the
// address it dialled before iptables redirected it (capture).
type destination struct {
	host string
	port uint32
	orig netip.AddrPort
	// src is the client's address when known, for consistentHash useSourceIp on pipes.
	src netip.Addr
}

var (
	// errRefused marks a connection that no ServiceEntry declares under REGISTRY_ONLY.
	errRefused = errors.New("no ServiceEntry declares this destination (outbound policy REGISTRY_ONLY)")
	// errUndeclaredIP marks an IP literal sent where the matched entry routes by name: only an address
	// the entry declares may be reached by IP.
	errUndeclaredIP = errors.New("the matched ServiceEntry does not declare this IP address")
	// errInvalidHost marks a host that is neither a DNS name nor an IP address without zone.
	errInvalidHost = errors.New("the host is neither a DNS name nor an IP address")
	// errNoName marks DYNAMIC_DNS traffic without a name to resolve (raw TCP, an IP literal).
	errNoName = errors.New("resolution DYNAMIC_DNS needs a host name (HTTP Host, TLS SNI or CONNECT authority)")
)

// validHost reports whether a forward-proxy host (absolute-form, Host field or CONNECT authority,
// without port) can name a destination at all: a DNS name or an IP address without a zone.
func validHost(host string) bool {
	norm := registry.NormalizeHost(host)
	if registry.IsHostName(norm) {
		return true
	}
	_, ok := registry.ParseIPLiteral(norm)
	return ok
}

// requested turns the host a forward-proxy client named into the destination m allows: a name is
// kept to be resolved; an IP literal becomes the address to dial only under ALLOW_ANY or when
// the matched entry declares it (its VIP or CIDR), so a literal can never borrow a name's match.
func requested(m registry.Match, host string, port uint32) (destination, error) {
	norm := registry.NormalizeHost(host)
	if registry.IsHostName(norm) {
		return destination{host: norm, port: port}, nil
	}
	a, ok := registry.ParseIPLiteral(norm)
	if !ok {
		return destination{}, errInvalidHost
	}
	dst := destination{port: port, orig: netip.AddrPortFrom(a.Unmap(), uint16(port))}
	if m.Outcome == registry.Passthrough || declaresAddr(m.Service, dst.orig.Addr()) {
		return dst, nil
	}
	switch m.Service.Resolution {
	case registry.ResolutionStatic, registry.ResolutionDNS, registry.ResolutionDNSRoundRobin:
		// The entry's own endpoints are dialled; the literal only picked the service.
		return destination{port: port}, nil
	}
	return destination{}, errUndeclaredIP
}

// declaresAddr reports whether one of svc's addresses (a VIP or CIDR) holds a.
func declaresAddr(svc *registry.Service, a netip.Addr) bool {
	for _, pfx := range svc.Addresses {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// dialMatch opens the upstream connection for a matched L4 connection (TLS passthrough, TCP,
// CONNECT), trying other endpoints when a connect fails, and says which upstream it reached.
func (p *Proxy) dialMatch(ctx context.Context, t *table, m registry.Match, dst destination) (net.Conn, string, error) {
	switch {
	case m.Outcome == registry.BlackHole:
		return nil, "", errRefused
	case m.Outcome == registry.Passthrough, m.Service.Resolution == registry.ResolutionNone:
		return p.secureDialed(ctx, t, m, dst.host)(p.dialOriginal(ctx, dst))
	case m.Service.Resolution == registry.ResolutionDynamicDNS:
		if !registry.IsHostName(dst.host) {
			return nil, "", errNoName
		}
		return p.secureDialed(ctx, t, m, dst.host)(p.dialName(ctx, dst.host, dst.port))
	}
	return p.dialRoute(ctx, t, m, t.route(m.Service, m.Port, p), dst)
}

// dialRoute opens the upstream connection of a matched L4 connection through r, the route of
// m's port (or of one of its subsets), trying other endpoints when a connect fails.
func (p *Proxy) dialRoute(ctx context.Context, t *table, m registry.Match, r *route, dst destination) (net.Conn, string, error) {
	if err := r.tls.refusal(); err != nil {
		return nil, "", err
	}
	if r.picker.Passthrough() {
		return p.secureDialed(ctx, t, m, dst.host)(p.dialOriginal(ctx, dst))
	}
	// tried excludes single-address endpoints that failed and names that did not resolve; a DNS
	// endpoint that connected to a failing address moves on to its other addresses, and is excluded
	// once none is left (exhausted).
	var tried uint64
	retrying := false
	exclude := func(i int) bool { return i < 64 && tried&(1<<i) != 0 || retrying && r.exhausted(i, r.health) }
	var errs []error
	for attempt := 0; attempt < p.cfg.MaxAttempts; attempt++ {
		i, ok := r.pickPipe(dst, exclude)
		if !ok {
			break
		}
		c, key, err := p.dialEndpoint(ctx, r, i, attempt > 0)
		if err == nil {
			p.reportSuccess(r.health, key)
			return c, key, nil
		}
		if errors.Is(err, httpfwd.ErrOverflow) {
			return nil, "", err
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if errors.Is(err, errLoop) {
			return nil, "", err
		}
		p.reportFailure(r.health, key)
		retrying = true
		if _, addr := splitKey(key); i < 64 && (r.eps[i].up.Key != "" || addr == "") {
			tried |= 1 << i
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("%s has no endpoints", r.port.Cluster)
	}
	return nil, "", fmt.Errorf("%s: %w", r.port.Cluster, errors.Join(errs...))
}

// dialEndpoint connects to endpoint i of r and returns the upstream's pool key, which carries the
// health keys to report the outcome under.
// Under a connectionPool the pipe counts against the cluster's maxConnections (refused at once
// with ErrOverflow beyond it, as Envoy's tcp_proxy does) and takes its connectTimeout.
func (p *Proxy) dialEndpoint(ctx context.Context, r *route, i int, retry bool) (net.Conn, string, error) {
	lim := r.limits
	if lim != nil && !lim.TakeConn() {
		return nil, r.eps[i].key, fmt.Errorf("%s: %w", r.port.Cluster, httpfwd.ErrOverflow)
	}
	c, key, err := p.dialEndpointIn(ctx, r, i, retry)
	if lim == nil {
		return c, key, err
	}
	if err != nil {
		lim.ReleaseConn()
		return nil, key, err
	}
	if err := lim.SetKeepAlive(c); err != nil {
		p.log.Debug("upstream keepalive not set", "cluster", r.port.Cluster, "err", err)
	}
	return httpfwd.LimitConn(c, lim), key, nil
}

// dialEndpointIn dials endpoint i of r within the connect timeout.
func (p *Proxy) dialEndpointIn(ctx context.Context, r *route, i int, retry bool) (net.Conn, string, error) {
	timeout := p.cfg.ConnectTimeout
	if r.limits != nil && r.limits.Settings.ConnectTimeout > 0 {
		timeout = r.limits.Settings.ConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	up, err := r.upstream(ctx, i, p.cfg.Resolver, r.health, retry)
	if err != nil {
		return nil, r.eps[i].key, err
	}
	if up.Dial != nil {
		c, err := up.Dial(ctx)
		return c, up.Key, err
	}
	c, err := p.dialGuarded(ctx, "tcp", up.Addr)
	return c, up.Key, err
}

// reportSuccess ends the failure streaks in h of the endpoint and address a pool key names.
func (p *Proxy) reportSuccess(h *balance.Health, key string) {
	ep, addr := splitKey(key)
	h.ReportSuccess(ep)
	if addr != "" {
		h.ReportSuccess(addr)
	}
}

// reportFailure counts a connect failure in h against the endpoint and address a pool key names.
func (p *Proxy) reportFailure(h *balance.Health, key string) {
	ep, addr := splitKey(key)
	p.counts.connectFailed(ep)
	if addr != "" && h.ReportFailure(addr) {
		p.counts.ejected(ep)
		p.log.Warn("address ejected after consecutive connect failures", "endpoint", ep, "address", addr)
	}
	if h.ReportFailure(ep) {
		p.counts.ejected(ep)
		p.log.Warn("endpoint ejected after consecutive connect failures", "endpoint", ep)
	}
}

// dialOriginal connects where the application meant to go: the pre-redirect address when captured
// (or a declared IP it named), else the requested name resolved by the resolver (NONE and
// ALLOW_ANY through the forward proxy). A host that is not a name is never handed to the resolver,
// which would return an IP literal as its own answer.
func (p *Proxy) dialOriginal(ctx context.Context, dst destination) (net.Conn, string, error) {
	if dst.orig.IsValid() {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
		defer cancel()
		addr := dst.orig.String()
		c, err := p.dialGuarded(ctx, "tcp", addr)
		return c, addr, err
	}
	if !registry.IsHostName(dst.host) {
		return nil, "", errUndeclaredIP
	}
	return p.dialName(ctx, dst.host, dst.port)
}

// dialName resolves host through the resolver and its cache and connects to the first of its
// addresses that answers on port.
func (p *Proxy) dialName(ctx context.Context, host string, port uint32) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	addrs, err := p.cfg.Resolver.Lookup(ctx, host)
	if err != nil {
		return nil, "", err // the resolver's error names the host already
	}
	var errs []error
	for _, a := range addrs {
		addr := netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
		c, err := p.dialGuarded(ctx, "tcp", addr)
		if err == nil {
			return c, addr, nil
		}
		if errors.Is(err, errLoop) {
			return nil, "", err
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("resolve %s: no addresses", host)
	}
	return nil, "", errors.Join(errs...)
}
