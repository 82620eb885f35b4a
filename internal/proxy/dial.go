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
	var tried uint64
	var errs []error
	for attempt := 0; attempt < p.cfg.MaxAttempts; attempt++ {
		i, ok := r.picker.Pick(func(i int) bool { return i < 64 && tried&(1<<i) != 0 })
		if !ok {
			break
		}
		if i < 64 {
			tried |= 1 << i
		}
		c, addr, err := p.dialEndpoint(ctx, r, i)
		if err == nil {
			p.health.ReportSuccess(r.eps[i].key)
			return c, addr, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if p.health.ReportFailure(r.eps[i].key) {
			p.log.Warn("endpoint ejected after consecutive connect failures", "endpoint", r.eps[i].key, "cluster", r.port.Cluster)
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, "", fmt.Errorf("%s has no endpoints", r.port.Cluster)
	}
	return nil, "", fmt.Errorf("%s: %w", r.port.Cluster, errors.Join(errs...))
}

// dialEndpoint connects to endpoint i of r.
func (p *Proxy) dialEndpoint(ctx context.Context, r *route, i int) (net.Conn, string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
	defer cancel()
	up, err := r.upstream(ctx, i, p.cfg.Resolver)
	if err != nil {
		return nil, r.eps[i].key, err
	}
	if up.Dial != nil {
		c, err := up.Dial(ctx)
		return c, up.Key, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", up.Addr)
	return c, up.Addr, err
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
		return nil, "", fmt.Errorf("resolve %s: %w", dst.host, err)
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
