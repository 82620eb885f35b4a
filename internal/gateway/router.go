package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	"github.com/meshentry/meshentry/internal/route"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// router routes the HTTP a gateway server accepted: the request's host must be one a server of
// its port declares (a server chosen by SNI when TLS was terminated), and a VirtualService bound
// to that server's Gateway must route it; either missing is 404, as Envoy answers for a virtual
// host or route it does not have.
type router struct{ g *Gateway }

// headers adapts a request head to the route package's header lookup.
type headers struct{ r *httpfwd.RequestHead }

func (h headers) Header(name string) ([]byte, bool) {
	v := h.r.Header(name)
	return v, v != nil
}

// Route implements httpfwd.Router.
func (rt *router) Route(req *httpfwd.RequestHead, attempt int) (httpfwd.Upstream, *httpfwd.Reject) {
	g := rt.g
	a, ok := req.RemoteAddr.(*connAddr)
	if !ok {
		return httpfwd.Upstream{}, &httpfwd.Reject{Status: 500, Reason: "gateway request without its server"}
	}
	st := g.current()
	if rej := httpsRedirect(st, req, a); rej != nil {
		return httpfwd.Upstream{}, rej
	}
	r, srv, why := rt.match(st, req, a)
	if r == nil {
		g.stats.NotFound.Add(1)
		g.log.Debug("gateway answered 404", "host", req.Host, "port", a.port, "why", why, "peer", a.peer, "remote", a.Addr.String())
		return httpfwd.Upstream{}, &httpfwd.Reject{Status: 404, Reason: why, Body: "meshentry gateway: " + why + "\n", Flags: telemetry.NoRoute}
	}
	up, rej := g.cfg.Proxy.GatewayHTTP(req, r, a.port, attempt)
	if rej == nil && attempt == 0 && g.log.Enabled(context.Background(), slog.LevelDebug) {
		g.log.Debug("gateway route", "server", srv.Where(), "virtual_service", r.VirtualService, "rule", r.Index, "peer", a.peer)
	}
	return up, rej
}

// match finds the server that accepts the request's host and the http route its Gateway's
// VirtualServices give it; why says what was missing when there is none.
func (rt *router) match(st *state, req *httpfwd.RequestHead, a *connAddr) (*route.HTTPRoute, *Server, string) {
	host := registry.NormalizeHost(req.Host)
	servers := []*Server{a.server}
	if a.server == nil {
		l := st.ports[a.port]
		if l == nil {
			return nil, nil, fmt.Sprintf("no Gateway server listens on port %d any more", a.port)
		}
		servers = l.Servers
	}
	scheme := "http"
	if a.server != nil {
		scheme = "https"
	}
	accepted := false
	for _, s := range servers {
		if _, ok := s.Accepts(host); !ok {
			continue
		}
		accepted = true
		rq := route.Request{Host: host, Port: a.port, Method: req.Method, Scheme: scheme, Authority: authority(req),
			Path: req.Path, Headers: headers{req}, Gateway: s.Gateway}
		r := st.table.HTTP(&rq)
		if r == nil || r.NotFound || !s.AdmitsRoute(host, namespaceOf(r.VirtualService)) {
			continue
		}
		return r, s, ""
	}
	if !accepted {
		return nil, nil, fmt.Sprintf("host %q is not among the hosts of the Gateway servers on port %d", host, a.port)
	}
	return nil, nil, fmt.Sprintf("no VirtualService bound to the Gateway routes %s on port %d", host, a.port)
}

// authority is the Host field as sent, or the absolute-form target's authority.
func authority(req *httpfwd.RequestHead) string {
	if h := req.Header("host"); h != nil {
		return string(h)
	}
	return strings.Clone(req.Host)
}

// Done implements httpfwd.Router: the outcome counts toward the endpoint's health.
func (rt *router) Done(up httpfwd.Upstream, err error) { rt.g.cfg.Proxy.GatewayDone(up, err) }

// httpsRedirect answers 301 to https:// for a plaintext server whose tls sets httpsRedirect
// and whose hosts take the request's, as Envoy's require_tls on the virtual host does.
func httpsRedirect(st *state, req *httpfwd.RequestHead, a *connAddr) *httpfwd.Reject {
	if a.server != nil {
		return nil
	}
	l := st.ports[a.port]
	if l == nil {
		return nil
	}
	host := registry.NormalizeHost(req.Host)
	for _, s := range l.Servers {
		if !s.TLS.GetHttpsRedirect() {
			continue
		}
		if _, ok := s.Accepts(host); !ok {
			continue
		}
		path := string(req.Path)
		if !req.Absolute {
			path = string(req.Target)
		}
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
		loc := "https://" + req.Host + path
		return &httpfwd.Reject{Status: 301, Reason: "the Gateway server redirects HTTP to HTTPS (httpsRedirect)",
			Header: []httpfwd.Field{{Name: "Location", Value: loc}}}
	}
	return nil
}
