package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshentry/meshentry/internal/metrics"
	"github.com/meshentry/meshentry/internal/xds/server"
)

// The xDS server's metrics, on the monitoring address as istiod serves its own on :15014
// /metrics. pilot_xds keeps istiod's name so its dashboards read it; the rest are meshentry's
// counters for the server's limits (--xds-max-nodes, --xds-max-unacked-bytes).
var (
	descPilotXDS = prometheus.NewDesc("pilot_xds",
		"Nodes connected to this xDS server.", nil, nil)
	descXDSServerStreams = prometheus.NewDesc("meshentry_xds_server_streams",
		"Open xDS streams that have named their node.", nil, nil)
	descXDSServerGroups = prometheus.NewDesc("meshentry_xds_server_config_groups",
		"Distinct configurations translated; nodes that get the same resources share one.", nil, nil)
	descXDSServerRefused = prometheus.NewDesc("meshentry_xds_server_nodes_refused_total",
		"Nodes turned away because --xds-max-nodes were already known.", nil, nil)
	descXDSServerThrottled = prometheus.NewDesc("meshentry_xds_server_sends_throttled_total",
		"Responses that waited because --xds-max-unacked-bytes were sent and not yet acknowledged.", nil, nil)
	descXDSServerUnacked = prometheus.NewDesc("meshentry_xds_server_unacked_bytes",
		"Response bytes sent to clients and not yet acknowledged.", nil, nil)
	descXDSServerUnackedLimit = prometheus.NewDesc("meshentry_xds_server_unacked_bytes_limit",
		"The --xds-max-unacked-bytes in effect.", nil, nil)
)

// xdsServerCollector reads server.Stats at each scrape.
type xdsServerCollector struct{ s *server.Server }

func (x xdsServerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPilotXDS, descXDSServerStreams, descXDSServerGroups, descXDSServerRefused,
		descXDSServerThrottled, descXDSServerUnacked, descXDSServerUnackedLimit} {
		ch <- d
	}
}

func (x xdsServerCollector) Collect(ch chan<- prometheus.Metric) {
	st := x.s.Stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descPilotXDS, float64(st.ConnectedNodes))
	gauge(descXDSServerStreams, float64(st.Streams))
	gauge(descXDSServerGroups, float64(st.Groups))
	counter(descXDSServerRefused, st.NodesRefused)
	counter(descXDSServerThrottled, st.SendsThrottled)
	gauge(descXDSServerUnacked, float64(st.UnackedBytes))
	gauge(descXDSServerUnackedLimit, float64(st.UnackedLimit))
}

// serveXDSMetrics serves /metrics on addr until the returned stop is called; an empty addr
// serves nothing. Scrapes are bounded as run's are (--metrics-max-scrapes' default).
func serveXDSMetrics(ctx context.Context, addr string, srv *server.Server, log *slog.Logger, ready func(net.Addr)) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(xdsServerCollector{s: srv}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg, 0))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("xds --monitoring %s: %w", addr, err)}
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		MaxHeaderBytes: 60 << 10,
		BaseContext:    func(net.Listener) context.Context { return ctx }}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("xds monitoring", "err", err)
		}
	}()
	log.Info("xds monitoring", "listen", ln.Addr().String(), "path", "/metrics")
	if ready != nil {
		ready(ln.Addr())
	}
	return func() { _ = hs.Close() }, nil
}
