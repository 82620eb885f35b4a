package main

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// gatewayCollector exports the gateway's counters in /stats/prometheus.
type gatewayCollector struct{ r *gatewayRun }

var (
	descGatewayOpen = prometheus.NewDesc("meshentry_gateway_connections_open",
		"Connections open now on a Gateway server port.", []string{"port"}, nil)
	descGatewayRefused = prometheus.NewDesc("meshentry_gateway_connections_refused_total",
		"Gateway connections refused, by reason: overflow (closed when accepted, --gateway-max-connections were open on the port), no_server (no server of the port serves the SNI), no_route (no route bound to the Gateway takes the host; HTTP gets 404), handshake (no ClientHello or a failed TLS handshake).", []string{"reason"}, nil)
	descGatewayCredentials = prometheus.NewDesc("meshentry_gateway_credential_reloads_total",
		"Gateway credential folders read again after a change, by result: ok (swapped in) or error (the old credential stays).", []string{"result"}, nil)
)

// Describe sends every descriptor.
func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGatewayOpen, descGatewayRefused, descGatewayCredentials} {
		ch <- d
	}
}

// Collect reads the counters once.
func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	gw := c.r.gw
	for _, port := range gw.Ports() {
		ch <- prometheus.MustNewConstMetric(descGatewayOpen, prometheus.GaugeValue, float64(gw.Open(port)), strconv.FormatUint(uint64(port), 10))
	}
	st := gw.Stats()
	for reason, v := range map[string]uint64{"overflow": st.Overflow.Load(), "no_server": st.NoServer.Load(),
		"no_route": st.NotFound.Load(), "handshake": st.HandshakeFailures.Load()} {
		ch <- prometheus.MustNewConstMetric(descGatewayRefused, prometheus.CounterValue, float64(v), reason)
	}
	ch <- prometheus.MustNewConstMetric(descGatewayCredentials, prometheus.CounterValue, float64(c.r.creds.Reloads()), "ok")
	ch <- prometheus.MustNewConstMetric(descGatewayCredentials, prometheus.CounterValue, float64(c.r.creds.ReloadErrors()), "error")
}

// registerMetrics adds the gateway's counters to reg; without --gateway it adds nothing.
func (r *gatewayRun) registerMetrics(reg *prometheus.Registry) error {
	if r == nil {
		return nil
	}
	return reg.Register(gatewayCollector{r: r})
}
