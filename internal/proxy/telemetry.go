package proxy

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/meshentry/meshentry/internal/httpfwd"
	"github.com/meshentry/meshentry/internal/registry"
	vroute "github.com/meshentry/meshentry/internal/route"
	"github.com/meshentry/meshentry/internal/telemetry"
)

// services holds the telemetry.Service of each service port of one snapshot, built the first
// time the port is used, so that every record of a port points to the same one.
type services struct {
	ports       sync.Map // *registry.Port -> *telemetry.Service
	passthrough *telemetry.Service
	blackhole   *telemetry.Service
}

func newServices() *services {
	return &services{
		passthrough: &telemetry.Service{Host: registry.PassthroughCluster, Name: registry.PassthroughCluster,
			Namespace: "unknown", Cluster: registry.PassthroughCluster},
		blackhole: &telemetry.Service{Host: registry.BlackHoleCluster, Name: registry.BlackHoleCluster,
			Namespace: "unknown", Cluster: registry.BlackHoleCluster},
	}
}

// of returns where m routes traffic, in Istio's label terms.
func (s *services) of(m registry.Match) *telemetry.Service {
	switch {
	case m.Outcome == registry.BlackHole:
		return s.blackhole
	case m.Outcome == registry.Passthrough, m.Service == nil, m.Port == nil:
		return s.passthrough
	}
	if v, ok := s.ports.Load(m.Port); ok {
		return v.(*telemetry.Service)
	}
	svc := &telemetry.Service{Host: m.Service.Host, Name: m.Service.Host, Namespace: m.Service.Namespace, Cluster: m.Port.Cluster}
	v, _ := s.ports.LoadOrStore(m.Port, svc)
	return v.(*telemetry.Service)
}

// Route implements httpfwd.Router: route decides, and the answer is labelled with the service
// the request matched, and a refusal with its response flag.
func (h *httpRouter) Route(req *httpfwd.RequestHead, attempt int) (httpfwd.Upstream, *httpfwd.Reject) {
	var m registry.Match
	var up httpfwd.Upstream
	var rej *httpfwd.Reject
	t := h.p.table.Load()
	if r := h.hinted(t, req, attempt); r != nil {
		m = registry.Match{Outcome: registry.Matched, Service: r.svc, Port: r.port, Cluster: r.port.Cluster}
		up, rej = h.p.endpointUpstream(r, req, attempt)
	} else {
		up, rej = h.route(t, req, attempt, &m)
	}
	if rej != nil {
		if m.Cluster != "" {
			// Matched at all: a refusal before matching (an invalid host) names no service.
			rej.Service = t.services.of(m)
		}
		if rej.Flags == 0 && rej.Status == 503 {
			// The endpoint loop found none left: none at all is UH, all tried and failed URX.
			rej.Flags = telemetry.NoHealthyUpstream
			if attempt > 0 {
				rej.Flags = telemetry.UpstreamConnectFailure | telemetry.RetriesExhausted
			}
		}
		return up, rej
	}
	up.Service = t.services.of(m)
	if up.Actions == nil && m.Outcome == registry.Matched {
		up.Actions = defaultRouteActions
	}
	return up, nil
}

// defaultRouteActions carry Istio's default retry policy (2 retries on a connect failure or a
// 503), which Istio gives the route of every declared service that no VirtualService rule
// routes. One value for all such requests; the loop engine serves them (Actions.LoopServes).
var defaultRouteActions = func() *httpfwd.Actions {
	r := vroute.DefaultRetries()
	return &httpfwd.Actions{Retry: &httpfwd.RetryPolicy{Attempts: r.Attempts, On: retryOn(r.On), StatusCodes: r.StatusCodes}}
}()

// refusalFlags is the response flag of a request or connection refused because of err: NR for
// what no ServiceEntry allows, DPE for a host that names nothing, UH for a service whose
// endpoints could not be found (a name that does not resolve, no endpoints), none for a loop.
func refusalFlags(err error) telemetry.Flags {
	switch {
	case errors.Is(err, httpfwd.ErrOverflow):
		return telemetry.UpstreamOverflow
	case errors.Is(err, errLoop):
		return 0
	case errors.Is(err, errRefused), errors.Is(err, errUndeclaredIP), errors.Is(err, errNoName):
		return telemetry.NoRoute
	case errors.Is(err, errInvalidHost):
		return telemetry.DownstreamProtocolError
	}
	return telemetry.NoHealthyUpstream
}

// dialFlags is the response flag of a piped connection whose upstream dial failed: UF when
// connecting failed, with URX when more than one attempt did, else as refusalFlags.
func dialFlags(err error) telemetry.Flags {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		return refusalFlags(err)
	}
	f := telemetry.UpstreamConnectFailure
	if attempts(err) > 1 {
		f |= telemetry.RetriesExhausted
	}
	return f
}

// attempts counts the failures dialMatch joined into err.
func attempts(err error) int {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			return len(j.Unwrap())
		}
	}
	return 1
}

// connRecord is the telemetry of one piped connection, reported opened and closed.
type connRecord struct {
	p   *Proxy
	rec telemetry.Conn
}

// startConn begins the record of a piped connection accepted as client; nil when no Sink
// listens, and every method of a nil record does nothing.
func (p *Proxy) startConn(client net.Conn, authority, sni string) *connRecord {
	if p.cfg.Telemetry == nil {
		return nil
	}
	return &connRecord{p: p, rec: telemetry.Conn{Start: time.Now(), Authority: authority, SNI: sni,
		DownstreamRemote: client.RemoteAddr(), DownstreamLocal: client.LocalAddr()}}
}

// opened reports the upstream connected.
func (c *connRecord) opened(svc *telemetry.Service, upstream string) {
	if c == nil {
		return
	}
	c.rec.Service, c.rec.UpstreamHost = svc, upstream
	c.p.cfg.Telemetry.ConnOpened(&c.rec)
}

// failed reports a connection closed without an upstream.
func (c *connRecord) failed(svc *telemetry.Service, flags telemetry.Flags) {
	if c == nil {
		return
	}
	c.rec.Service, c.rec.Flags = svc, flags
	c.closed(0, 0, false)
}

// closed reports the connection's end with the bytes moved each way.
func (c *connRecord) closed(received, sent int64, idle bool) {
	if c == nil {
		return
	}
	c.rec.Duration = time.Since(c.rec.Start)
	c.rec.Received, c.rec.Sent = received, sent
	if idle {
		c.rec.Flags |= telemetry.DurationTimeout
	}
	c.p.cfg.Telemetry.ConnClosed(&c.rec)
}

// serviceOf labels a match of the current snapshot; nil when nothing was matched yet.
func (p *Proxy) serviceOf(m registry.Match) *telemetry.Service {
	if m.Cluster == "" {
		return nil
	}
	return p.table.Load().services.of(m)
}
