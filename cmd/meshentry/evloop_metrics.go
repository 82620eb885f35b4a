package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/evloop"
)

// loopCollector exports the counters of the evloop Groups that serve listeners
// (--gateway-event-loop, --forward-event-loop) as meshentry_event_loop_*, labelled by the
// listener they serve, so an operator sees each bound the loops hit (the connection cap, accept
// errors, timeouts, the head phase's time and size).
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
	descLoopPairs = prometheus.NewDesc("meshentry_event_loop_pairs_total",
		"Connections an event loop relayed itself: upstream connects begun for them (a gateway TCP server's connection, a CONNECT tunnel).", []string{"listener"}, nil)
	descLoopHeadWaits = prometheus.NewDesc("meshentry_event_loop_head_waits_total",
		"Connections whose first bytes did not decide them at once, so the loop waited for more (forward port).", []string{"listener"}, nil)
	descLoopHandoffs = prometheus.NewDesc("meshentry_event_loop_handoffs_total",
		"Accepted connections an event loop handed to the goroutine path, which serves what the loop cannot.", []string{"listener"}, nil)
	descLoopFailures = prometheus.NewDesc("meshentry_event_loop_failures_total",
		"Event-loop failures, by kind: connect (an upstream connect attempt failed), connect_timeout, idle_timeout (a pair idle past the TCP idle timeout), accept (an accept error other than EAGAIN; the listener rests 50 ms), head_timeout and head_full (a connection's first bytes took longer than --header-read-timeout, or filled --max-header-bytes: it was decided then, most often handed off), head_error (reset before a decision).", []string{"listener", "kind"}, nil)
	descLoopBytes = prometheus.NewDesc("meshentry_event_loop_bytes_total",
		"Bytes the event loops relayed, by direction: up (client to upstream) or down.", []string{"listener", "direction"}, nil)
)

// Describe sends every descriptor.
func (c loopCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLoopAccepted, descLoopOpen, descLoopClosed, descLoopPairs, descLoopHeadWaits, descLoopHandoffs, descLoopFailures, descLoopBytes} {
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
		counter(descLoopPairs, s.Pairs, name)
		counter(descLoopHeadWaits, s.HeadWaits, name)
		counter(descLoopHandoffs, s.Handoffs, name)
		counter(descLoopFailures, s.ConnectFailures, name, "connect")
		counter(descLoopFailures, s.ConnectTimeouts, name, "connect_timeout")
		counter(descLoopFailures, s.IdleTimeouts, name, "idle_timeout")
		counter(descLoopFailures, s.AcceptErrors, name, "accept")
		counter(descLoopFailures, s.HeadTimeouts, name, "head_timeout")
		counter(descLoopFailures, s.HeadFull, name, "head_full")
		counter(descLoopFailures, s.HeadErrors, name, "head_error")
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
