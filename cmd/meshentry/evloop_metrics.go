package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/evloop"
)

// loopCollector exports the counters of the evloop Groups that serve listeners
// (--gateway-event-loop) as meshentry_event_loop_*, labelled by the listener they serve, so an
// operator sees each bound the loops hit (the connection cap, accept errors, timeouts).
type loopCollector struct {
	stats map[string]func() evloop.Stats // by listener name
}

var (
	descLoopAccepted = prometheus.NewDesc("meshentry_event_loop_connections_accepted_total",
		"Connections an event loop accepted, those it closed at once included.", []string{"listener"}, nil)
	descLoopOpen = prometheus.NewDesc("meshentry_event_loop_connections_open",
		"Connections the event loops relay now (handed-off ones not included).", []string{"listener"}, nil)
	descLoopClosed = prometheus.NewDesc("meshentry_event_loop_connections_refused_total",
		"Accepted connections an event loop closed at once, by reason: overflow (the loop's connection cap was reached) or rejected (no route).", []string{"listener", "reason"}, nil)
	descLoopHandoffs = prometheus.NewDesc("meshentry_event_loop_handoffs_total",
		"Accepted connections an event loop handed to the goroutine path, which serves what the loop cannot.", []string{"listener"}, nil)
	descLoopFailures = prometheus.NewDesc("meshentry_event_loop_failures_total",
		"Event-loop failures, by kind: connect (an upstream connect attempt failed), connect_timeout, idle_timeout (a pair idle past the TCP idle timeout), accept (an accept error other than EAGAIN; the listener rests 100 ms).", []string{"listener", "kind"}, nil)
	descLoopBytes = prometheus.NewDesc("meshentry_event_loop_bytes_total",
		"Bytes the event loops relayed, by direction: up (client to upstream) or down.", []string{"listener", "direction"}, nil)
)

// Describe sends every descriptor.
func (c loopCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLoopAccepted, descLoopOpen, descLoopClosed, descLoopHandoffs, descLoopFailures, descLoopBytes} {
		ch <- d
	}
}

// Collect reads each Group's counters once.
func (c loopCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, stats := range c.stats {
		s := stats()
		counter(descLoopAccepted, s.Accepted, name)
		ch <- prometheus.MustNewConstMetric(descLoopOpen, prometheus.GaugeValue, float64(s.Open), name)
		counter(descLoopClosed, s.Overflow, name, "overflow")
		counter(descLoopClosed, s.Rejected, name, "rejected")
		counter(descLoopHandoffs, s.Handoffs, name)
		counter(descLoopFailures, s.ConnectFailures, name, "connect")
		counter(descLoopFailures, s.ConnectTimeouts, name, "connect_timeout")
		counter(descLoopFailures, s.IdleTimeouts, name, "idle_timeout")
		counter(descLoopFailures, s.AcceptErrors, name, "accept")
		counter(descLoopBytes, s.BytesUp, name, "up")
		counter(descLoopBytes, s.BytesDown, name, "down")
	}
}

// registerLoopMetrics adds the collector of the Groups in stats to reg; with none it adds
// nothing.
func registerLoopMetrics(reg *prometheus.Registry, stats map[string]func() evloop.Stats) error {
	if len(stats) == 0 {
		return nil
	}
	return reg.Register(loopCollector{stats: stats})
}
