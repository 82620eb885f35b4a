package metrics

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/telemetry"
)

// Protocols in the hot-path keys, and as request_protocol writes them. Nothing records gRPC yet:
// telemetry.Request does not say whether a request was gRPC, so every request is "http".
const (
	protoHTTP uint8 = iota
	protoGRPC
	protoTCP
)

var protocolLabel = [...]string{protoHTTP: "http", protoGRPC: "grpc", protoTCP: "tcp"}

// unrouted stands for the Service of a record refused before routing, which has none.
var unrouted = telemetry.Service{Host: unknown, Name: unknown, Namespace: unknown}

// httpKey is what distinguishes one request series from another on the hot path. The Service
// pointer stands for its three label values: the proxy keeps one Service per service port per
// snapshot, so comparing pointers is exact and costs nothing.
type httpKey struct {
	svc    *telemetry.Service
	status int
	flags  telemetry.Flags
	proto  uint8
}

// tcpKey is httpKey for piped connections, which have no status.
type tcpKey struct {
	svc   *telemetry.Service
	flags telemetry.Flags
}

// httpSeries are the resolved series of one request label set. A series with nil fields stands
// for a label set over MaxSeries: its records are dropped and counted.
type httpSeries struct {
	requests              prometheus.Counter
	duration, reqB, respB prometheus.Observer
}

// tcpSeries are the resolved series of one connection label set; nil fields as httpSeries.
type tcpSeries struct {
	opened, closed, sent, received prometheus.Counter
}

// overLimit are the sentinels cached for label sets MaxSeries left out.
var (
	httpOverLimit = &httpSeries{}
	tcpOverLimit  = &tcpSeries{}
)

// Request records one finished HTTP request in istio_requests_total and the three histograms.
func (m *Metrics) Request(r *telemetry.Request) {
	m.countRefusal(r.Flags)
	k := httpKey{svc: r.Service, status: r.Status, flags: r.Flags, proto: protoHTTP}
	var s *httpSeries
	if v, ok := m.httpCache.Load(k); ok {
		s = v.(*httpSeries)
	} else {
		s = m.resolveHTTP(k)
	}
	if s.requests == nil {
		m.seriesDropped.Add(1)
		return
	}
	s.requests.Inc()
	// Negative values are never meant; clamping keeps a bug elsewhere from pulling sums down.
	s.duration.Observe(float64(max(r.Duration, 0)) / 1e6)
	s.reqB.Observe(float64(max(r.RequestBytes, 0)))
	s.respB.Observe(float64(max(r.ResponseBytes, 0)))
}

// ConnOpened counts a piped connection whose upstream is connected.
func (m *Metrics) ConnOpened(c *telemetry.Conn) {
	if s := m.tcp(c); s.opened != nil {
		s.opened.Inc()
	} else {
		m.seriesDropped.Add(1)
	}
}

// ConnClosed counts a piped connection's close and adds its bytes. A connection that never got
// an upstream (no UpstreamHost) was never reported opened, so it is counted opened here too:
// Istio counts every accepted connection as opened, and opened and closed totals then agree once
// every connection has closed.
func (m *Metrics) ConnClosed(c *telemetry.Conn) {
	m.countRefusal(c.Flags)
	s := m.tcp(c)
	if s.closed == nil {
		m.seriesDropped.Add(1)
		return
	}
	if c.UpstreamHost == "" {
		s.opened.Inc()
	}
	s.closed.Inc()
	s.sent.Add(float64(max(c.Sent, 0)))
	s.received.Add(float64(max(c.Received, 0)))
}

func (m *Metrics) tcp(c *telemetry.Conn) *tcpSeries {
	k := tcpKey{svc: c.Service, flags: c.Flags}
	if v, ok := m.tcpCache.Load(k); ok {
		return v.(*tcpSeries)
	}
	return m.resolveTCP(k)
}

// resolveHTTP finds or makes the series of k's label set and caches them under k. Two keys with
// the same label values (one Service from successive snapshots) share the series.
func (m *Metrics) resolveHTTP(k httpKey) *httpSeries {
	svc := k.svc
	if svc == nil {
		svc = &unrouted
	}
	code, flags := codeLabel(k.status), k.flags.String()
	name := strings.Join([]string{svc.Host, svc.Name, svc.Namespace, code, flags, protocolLabel[k.proto]}, "\x00")
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.httpByName[name]
	switch {
	case ok:
	case len(m.httpByName) >= m.maxSeries:
		s = httpOverLimit
	default:
		d := destination{host: svc.Host, name: svc.Name, namespace: svc.Namespace, protocol: protocolLabel[k.proto]}
		// grpc_response_status is empty for plain HTTP, as Istio writes it; connection_security_policy
		// is unknown for a source reporter.
		values := m.source.values(d, code, "", flags, unknown)
		s = &httpSeries{
			requests: m.istio.requests.WithLabelValues(values...),
			duration: m.istio.duration.WithLabelValues(values...),
			reqB:     m.istio.requestBytes.WithLabelValues(values...),
			respB:    m.istio.responseBytes.WithLabelValues(values...),
		}
		m.httpByName[name] = s
	}
	if m.httpCached >= m.maxCache {
		m.httpCache.Clear()
		m.httpCached = 0
		m.cacheResets.Add(1)
	}
	if _, loaded := m.httpCache.LoadOrStore(k, s); !loaded {
		m.httpCached++
	}
	return s
}

// resolveTCP is resolveHTTP for connections.
func (m *Metrics) resolveTCP(k tcpKey) *tcpSeries {
	svc := k.svc
	if svc == nil {
		svc = &unrouted
	}
	flags := k.flags.String()
	name := strings.Join([]string{svc.Host, svc.Name, svc.Namespace, flags}, "\x00")
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.tcpByName[name]
	switch {
	case ok:
	case len(m.tcpByName) >= m.maxSeries:
		s = tcpOverLimit
	default:
		d := destination{host: svc.Host, name: svc.Name, namespace: svc.Namespace, protocol: protocolLabel[protoTCP]}
		values := m.source.values(d, flags, unknown)
		s = &tcpSeries{
			opened:   m.istio.tcpOpened.WithLabelValues(values...),
			closed:   m.istio.tcpClosed.WithLabelValues(values...),
			sent:     m.istio.tcpSent.WithLabelValues(values...),
			received: m.istio.tcpReceived.WithLabelValues(values...),
		}
		m.tcpByName[name] = s
	}
	if m.tcpCached >= m.maxCache {
		m.tcpCache.Clear()
		m.tcpCached = 0
		m.cacheResets.Add(1)
	}
	if _, loaded := m.tcpCache.LoadOrStore(k, s); !loaded {
		m.tcpCached++
	}
	return s
}

// refusalReasons are the flags that mean the proxy itself refused a request or connection, and
// the reason label meshentry_requests_refused_total gives each.
var refusalReasons = [...]struct {
	flag   telemetry.Flags
	reason string
}{
	{telemetry.NoRoute, "no_route"},
	{telemetry.NoHealthyUpstream, "no_healthy_upstream"},
	{telemetry.UpstreamOverflow, "overflow"},
	{telemetry.DownstreamProtocolError, "protocol_error"},
}

// refusalMask has every flag of refusalReasons, so an unrefused record costs one test.
const refusalMask = telemetry.NoRoute | telemetry.NoHealthyUpstream | telemetry.UpstreamOverflow | telemetry.DownstreamProtocolError

func (m *Metrics) countRefusal(f telemetry.Flags) {
	if f&refusalMask == 0 {
		return
	}
	for i, r := range refusalReasons {
		if f&r.flag != 0 {
			m.refused[i].Add(1)
		}
	}
}
