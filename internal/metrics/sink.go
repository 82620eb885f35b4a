package metrics

import (
	"strings"
	"sync"

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
	s, ok := m.httpCache.load(k)
	if !ok {
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
	// The bytes before the close: a scrape that sees the connection closed sees all its bytes.
	s.sent.Add(float64(max(c.Sent, 0)))
	s.received.Add(float64(max(c.Received, 0)))
	s.closed.Inc()
}

func (m *Metrics) tcp(c *telemetry.Conn) *tcpSeries {
	k := tcpKey{svc: c.Service, flags: c.Flags}
	if s, ok := m.tcpCache.load(k); ok {
		return s
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
	return resolveSeries(m, &m.httpCache, k, name, httpOverLimit, func() *httpSeries {
		d := destination{host: svc.Host, name: svc.Name, namespace: svc.Namespace, protocol: protocolLabel[k.proto]}
		// grpc_response_status is empty for plain HTTP, as Istio writes it; connection_security_policy
		// is unknown for a source reporter.
		values := m.source.values(d, code, "", flags, unknown)
		return &httpSeries{
			requests: m.istio.requests.WithLabelValues(values...),
			duration: m.istio.duration.WithLabelValues(values...),
			reqB:     m.istio.requestBytes.WithLabelValues(values...),
			respB:    m.istio.responseBytes.WithLabelValues(values...),
		}
	})
}

// resolveTCP is resolveHTTP for connections.
func (m *Metrics) resolveTCP(k tcpKey) *tcpSeries {
	svc := k.svc
	if svc == nil {
		svc = &unrouted
	}
	flags := k.flags.String()
	name := strings.Join([]string{svc.Host, svc.Name, svc.Namespace, flags}, "\x00")
	return resolveSeries(m, &m.tcpCache, k, name, tcpOverLimit, func() *tcpSeries {
		d := destination{host: svc.Host, name: svc.Name, namespace: svc.Namespace, protocol: protocolLabel[protoTCP]}
		values := m.source.values(d, flags, unknown)
		return &tcpSeries{
			opened:   m.istio.tcpOpened.WithLabelValues(values...),
			closed:   m.istio.tcpClosed.WithLabelValues(values...),
			sent:     m.istio.tcpSent.WithLabelValues(values...),
			received: m.istio.tcpReceived.WithLabelValues(values...),
		}
	})
}

// seriesCache maps the hot path's keys of one kind to their resolved series S, and label sets
// to series, so that keys with the same label values share them.
type seriesCache[K comparable, S any] struct {
	// hot maps K to S; a hit allocates nothing and takes no lock.
	hot sync.Map
	// hotLen and byName are guarded by Metrics.mu.
	hotLen int
	byName map[string]S
}

// load is the hot path's lookup.
func (c *seriesCache[K, S]) load(k K) (S, bool) {
	v, ok := c.hot.Load(k)
	if !ok {
		var zero S
		return zero, false
	}
	return v.(S), true
}

// resolveSeries finds the series of label set name, or makes them with build while fewer than
// MaxSeries exist (over stands for one beyond), and caches them under k, emptying the cache
// first when it is full.
func resolveSeries[K comparable, S any](m *Metrics, c *seriesCache[K, S], k K, name string, over S, build func() S) S {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := c.byName[name]
	switch {
	case ok:
	case len(c.byName) >= m.maxSeries:
		s = over
	default:
		s = build()
		c.byName[name] = s
	}
	if c.hotLen >= m.maxCache {
		c.hot.Clear()
		c.hotLen = 0
		m.cacheResets.Add(1)
	}
	if _, loaded := c.hot.LoadOrStore(k, s); !loaded {
		c.hotLen++
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
