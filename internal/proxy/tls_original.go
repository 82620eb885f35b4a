package proxy

import (
	"context"
	"crypto/tls"
	"net"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
)

// Services of resolution NONE and DYNAMIC_DNS send traffic where the application addressed it
// rather than through a route's endpoints; a DestinationRule's tls applies to them all the same,
// as Istio's does to their clusters (auto mTLS does not: they have no endpoint labels).

// originalTLS returns the DestinationRule TLS for a matched service whose traffic goes to the
// original destination, nil for plaintext or a passthrough; err when the rule's TLS cannot be set up.
func (p *Proxy) originalTLS(t *table, m registry.Match) (*originTLS, error) {
	if m.Outcome == registry.Passthrough || m.Service == nil || m.Port == nil {
		return nil, nil
	}
	r := t.route(m.Service, m.Port, p)
	if err := r.tls.refusal(); err != nil {
		return nil, err
	}
	return r.tls.explicit, nil
}

// secureOriginal wraps the Dial of an original-destination upstream in the service's TLS, with
// host as the SNI when the rule and the entry name none (a wildcard entry).
func (p *Proxy) secureOriginal(t *table, m registry.Match, host string, id []byte, up httpfwd.Upstream, rej *httpfwd.Reject) (httpfwd.Upstream, *httpfwd.Reject) {
	if rej != nil {
		return up, rej
	}
	o, err := p.originalTLS(t, m)
	if err != nil {
		return httpfwd.Upstream{}, p.tlsRefusal(err, id)
	}
	if o == nil {
		return up, nil
	}
	dial := up.Dial
	// The Dial runs only when the pool has no idle connection, so a per-host config is made
	// then, not for every request.
	up.Dial = func(ctx context.Context) (net.Conn, error) {
		raw, err := dial(ctx)
		if err != nil {
			return nil, err
		}
		return p.handshake(ctx, o, o.cfgFor(host), m.Cluster, raw, nil)
	}
	if o.cfg.ServerName == "" {
		// The SNI follows the host: connections made for one host must not serve another.
		up.Key += "|sni=" + host
	}
	up.Key += tlsKeyMark
	return up, nil
}

// secureOriginalConn runs the service's TLS handshake over c, a piped connection to the original
// destination; c is returned as it is when the service has no TLS.
func (p *Proxy) secureOriginalConn(ctx context.Context, t *table, m registry.Match, host string, c net.Conn) (net.Conn, error) {
	o, err := p.originalTLS(t, m)
	if err != nil {
		c.Close()
		return nil, err
	}
	if o == nil {
		return c, nil
	}
	return p.handshake(ctx, o, o.cfgFor(host), m.Cluster, c, nil)
}

// cfgFor is o's config with host as the SNI when it names none and host is a name.
func (o *originTLS) cfgFor(host string) *tls.Config {
	if o.cfg.ServerName != "" || !registry.IsHostName(host) {
		return o.cfg
	}
	cfg := o.cfg.Clone()
	cfg.ServerName = host
	return cfg
}

// secureDialed wraps the result of an original-destination dial (conn, key, err) in the service's
// TLS, for the byte pipes.
func (p *Proxy) secureDialed(ctx context.Context, t *table, m registry.Match, host string) func(net.Conn, string, error) (net.Conn, string, error) {
	return func(c net.Conn, key string, err error) (net.Conn, string, error) {
		if err != nil {
			return nil, key, err
		}
		ctx, cancel := context.WithTimeout(ctx, p.cfg.ConnectTimeout)
		defer cancel()
		c, err = p.secureOriginalConn(ctx, t, m, host, c)
		return c, key, err
	}
}
