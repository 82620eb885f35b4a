package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/source/xdsclient"
)

// xdsClientCollector exports the counters of `run --config-source`'s xDS stream
// (xdsclient.Client.Stats) in /stats/prometheus, in the spirit of Envoy's control_plane.* and
// Istio's pilot_xds_* series.
type xdsClientCollector struct{ c *xdsclient.Client }

var (
	descXDSConnected = prometheus.NewDesc("meshentry_xds_client_connected",
		"1 while a stream to the xDS server is open and the server has answered on it, else 0 (Envoy's control_plane.connected_state).", nil, nil)
	descXDSAcks = prometheus.NewDesc("meshentry_xds_client_acks_total",
		"xDS responses accepted (ACKed).", nil, nil)
	descXDSNacks = prometheus.NewDesc("meshentry_xds_client_nacks_total",
		"xDS responses refused (NACKed): a document that failed decoding or validation; the last good config keeps serving.", nil, nil)
	descXDSStreams = prometheus.NewDesc("meshentry_xds_client_streams_total",
		"ADS streams opened to the xDS server.", nil, nil)
	descXDSReconnects = prometheus.NewDesc("meshentry_xds_client_reconnects_total",
		"ADS streams opened again after one was lost (streams after the first).", nil, nil)
	descXDSFailures = prometheus.NewDesc("meshentry_xds_client_stream_failures_total",
		"ADS streams that ended in error (server gone, refused, or reset); each is retried with back-off.", nil, nil)
	descXDSOversize = prometheus.NewDesc("meshentry_xds_client_oversize_total",
		"xDS responses refused for exceeding --xds-max-message-bytes, each ending its stream.", nil, nil)
)

// Describe sends every descriptor.
func (x xdsClientCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descXDSConnected, descXDSAcks, descXDSNacks, descXDSStreams, descXDSReconnects,
		descXDSFailures, descXDSOversize} {
		ch <- d
	}
}

// Collect reads the counters once.
func (x xdsClientCollector) Collect(ch chan<- prometheus.Metric) {
	st := x.c.Stats()
	connected := 0.0
	if st.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descXDSConnected, prometheus.GaugeValue, connected)
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descXDSAcks, st.Acks)
	counter(descXDSNacks, st.Nacks)
	counter(descXDSStreams, st.Streams)
	counter(descXDSReconnects, max(st.Streams, 1)-1)
	counter(descXDSFailures, st.Failures)
	counter(descXDSOversize, st.Oversize)
}

// registerXDSClientMetrics adds the xDS client's metrics to reg when the config comes from an
// xDS server; with -f it adds nothing.
func registerXDSClientMetrics(reg *prometheus.Registry, src configSource, log *slog.Logger) {
	c, ok := src.(*xdsclient.Client)
	if !ok {
		return
	}
	if err := reg.Register(xdsClientCollector{c: c}); err != nil {
		log.Error("xds client metrics left out", "err", err)
	}
}
