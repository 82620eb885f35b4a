package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/meshentry/meshentry/internal/registry"
)

// destination is what the application asked for: a named host and port (forward proxy) and/or the
// address it dialled before iptables redirected it (capture).
type destination struct {
	host string
	port uint32
	orig netip.AddrPort
}

// errRefused marks a connection that no ServiceEntry declares under REGISTRY_ONLY.
var errRefused = errors.New("no ServiceEntry declares this destination (outbound policy REGISTRY_ONLY)")

// dialMatch opens the upstream connection for a matched L4 connection (TLS passthrough, TCP,
// CONNECT), trying other endpoints when a connect fails, and says which upstream it reached.
func (p *Proxy) dialMatch(ctx context.Context, t *table, m registry.Match, dst destination) (net.Conn, string, error) {
	switch m.Outcome {
	case registry.BlackHole:
		return nil, "", errRefused
	case registry.Passthrough:
		return p.dialOriginal(ctx, dst)
	}
	if m.Service.Resolution == registry.ResolutionNone {
		return p.dialOriginal(ctx, dst)
	}
	r := t.route(m.Service, m.Port, p)
	// tried excludes single-address endpoints that failed and names that did not resolve; a DNS
	// endpoint that connected to a failing address moves on to its other addresses, and is excluded
	// once none is left (exhausted).
	var tried uint64
	retrying := false
	exclude := func(i int) bool { return i < 64 && tried&(1<<i) != 0 || retrying && r.exhausted(i, p.health) }
	var errs []error
	for attempt := 0; attempt < p.cfg.MaxAttempts; attempt++ {
		i, ok := r.picker.Pick(exclude)
		if !ok {
			break
		}
		c, key, err := p.dialEndpoint(ctx, r, i, attempt > 0)
		if err == nil {
			p.reportSuccess(key)
			return c, key, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		p.reportFailure(key)
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
func (p *Proxy) dialEndpoint(ctx context.Context, r *route, i int, retry bool) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	up, err := r.upstream(ctx, i, p.cfg.Resolver, p.health, retry)
	if err != nil {
		return nil, r.eps[i].key, err
	}
	if up.Dial != nil {
		c, err := up.Dial(ctx)
		return c, up.Key, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", up.Addr)
	return c, up.Key, err
}

// reportSuccess ends the failure streaks of the endpoint and address a pool key names.
func (p *Proxy) reportSuccess(key string) {
	ep, addr := splitKey(key)
	p.health.ReportSuccess(ep)
	if addr != "" {
		p.health.ReportSuccess(addr)
	}
}

// reportFailure counts a connect failure against the endpoint and address a pool key names.
func (p *Proxy) reportFailure(key string) {
	ep, addr := splitKey(key)
	if addr != "" && p.health.ReportFailure(addr) {
		p.log.Warn("address ejected after consecutive connect failures", "endpoint", ep, "address", addr)
	}
	if p.health.ReportFailure(ep) {
		p.log.Warn("endpoint ejected after consecutive connect failures", "endpoint", ep)
	}
}

// dialOriginal connects where the application meant to go: the pre-redirect address when captured,
// else the requested host resolved by the resolver (NONE and ALLOW_ANY through the forward proxy).
func (p *Proxy) dialOriginal(ctx context.Context, dst destination) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	var d net.Dialer
	if dst.orig.IsValid() {
		addr := dst.orig.String()
		c, err := d.DialContext(ctx, "tcp", addr)
		return c, addr, err
	}
	addrs, err := p.cfg.Resolver.Lookup(ctx, dst.host)
	if err != nil {
		return nil, "", err // the resolver's error names the host already
	}
	var errs []error
	for _, a := range addrs {
		addr := netip.AddrPortFrom(a, uint16(dst.port)).String()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c, addr, nil
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}
