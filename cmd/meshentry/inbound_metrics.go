package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// inboundCollector exports the --inbound listeners' counters in /stats/prometheus, one series
// per listener (labelled as /listeners names it).
type inboundCollector struct{ set *inboundSet }

var (
	descInboundConns = inboundDesc("meshentry_inbound_connections_total",
		"Inbound mTLS connections accepted under the cap, by how they were forwarded: http, tcp, or none (the handshake or first read failed, or is under way).", "listener", "forwarded")
	descInboundOpen    = inboundDesc("meshentry_inbound_connections_open", "Inbound mTLS connections open now.", "listener")
	descInboundRefused = inboundDesc("meshentry_inbound_connections_refused_total",
		"Inbound connections closed when accepted because --inbound-max-connections were open.", "listener")
	descInboundHandshake = inboundDesc("meshentry_inbound_handshake_failures_total",
		"Inbound TLS handshakes that failed, by reason: peer (certificate not from the trust bundle, expired, or identity not allowed), timeout (--inbound-handshake-timeout), other (no certificate, not TLS, protocol errors).", "listener", "reason")
	descInboundTarget = inboundDesc("meshentry_inbound_target_connect_failures_total",
		"Piped inbound connections whose target could not be reached.", "listener")
)

func inboundDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// Describe sends every descriptor.
func (c inboundCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInboundConns, descInboundOpen, descInboundRefused, descInboundHandshake, descInboundTarget} {
		ch <- d
	}
}

// Collect reads each listener's counters once.
func (c inboundCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for i, l := range c.set.adminListeners() {
		st := c.set.servers[i].Stats()
		counter(descInboundConns, st.HTTPConns, l.Name, "http")
		counter(descInboundConns, st.TCPConns, l.Name, "tcp")
		counter(descInboundConns, st.Accepted-min(st.Accepted, st.HTTPConns+st.TCPConns), l.Name, "none")
		ch <- prometheus.MustNewConstMetric(descInboundOpen, prometheus.GaugeValue, float64(st.Open), l.Name)
		counter(descInboundRefused, st.RefusedAtCap, l.Name)
		other := st.HandshakeFailures - min(st.HandshakeFailures, st.PeerRefused+st.HandshakeTimeouts)
		counter(descInboundHandshake, st.PeerRefused, l.Name, "peer")
		counter(descInboundHandshake, st.HandshakeTimeouts, l.Name, "timeout")
		counter(descInboundHandshake, other, l.Name, "other")
		counter(descInboundTarget, st.TargetConnectFailures, l.Name)
	}
}

// registerMetrics adds the inbound counters to reg; with no --inbound it adds nothing.
func (s *inboundSet) registerMetrics(reg *prometheus.Registry) error {
	if len(s.servers) == 0 {
		return nil
	}
	return reg.Register(inboundCollector{set: s})
}
