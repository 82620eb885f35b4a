package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshentry/meshentry/internal/evloop"
	"github.com/meshentry/meshentry/internal/httpfwd"
)

// loopCollector exports the counters of the evloop Groups that serve listeners
// (--gateway-event-loop, --forward-event-loop) as meshentry_event_loop_*, labelled by the
// listener they serve, so an operator sees each bound the loops hit (the connection cap, accept
// errors, timeouts, the head phase's time and size).
type loopCollector struct {
	stats map[string]func() evloop.Stats // by listener name
	// http are the counters of the loop engines serving HTTP requests on the loops, by
	// listener name (the forward port's).
	http map[string]func() httpfwd.LoopStats
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
	descLoopServed = prometheus.NewDesc("meshentry_event_loop_http_connections_total",
		"Connections an event loop kept to serve their HTTP requests itself (forward port); those later handed off included.", []string{"listener"}, nil)
	descLoopHTTPRequests = prometheus.NewDesc("meshentry_event_loop_http_requests_total",
		"HTTP requests the event loops served themselves, answered or failed.", []string{"listener"}, nil)
	descLoopHTTPEvents = prometheus.NewDesc("meshentry_event_loop_http_events_total",
		"What the loops' HTTP engine did besides serving, by kind: handoff (a connection handed to the goroutine path at a request the loop does not serve), head_timeout (408), idle_timeout (a keep-alive client closed), stream_idle_timeout, connect_timeout, connect_failure, stale_retry (a request sent again after a reused upstream connection failed), interim (a 1xx relayed), bad_response (502), pool_reused, pool_full (an upstream connection closed: its key had the pool's idle maximum), pool_idle_closed (an idle upstream connection closed or sent bytes), pool_idle_timeout, mismatch (a route the loop could not reach: 503), drain_closed (an idle client closed by a drain), park (a keep-alive client gave its request state back to wait for its next request with a few hundred bytes), pool_retired (an upstream connection closed, idle or as it came back, because a reload took its endpoint away).", []string{"listener", "kind"}, nil)
)

// Describe sends every descriptor.
func (c loopCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLoopAccepted, descLoopOpen, descLoopClosed, descLoopPairs, descLoopHeadWaits, descLoopHandoffs, descLoopFailures, descLoopBytes,
		descLoopServed, descLoopHTTPRequests, descLoopHTTPEvents} {
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
		if _, ok := c.http[name]; ok {
			counter(descLoopServed, s.Served, name)
		}
	}
	for name, stats := range c.http {
		collectLoopHTTP(ch, name, stats())
	}
}

// collectLoopHTTP sends the counters of one listener's loop HTTP engine.
func collectLoopHTTP(ch chan<- prometheus.Metric, name string, s httpfwd.LoopStats) {
	ch <- prometheus.MustNewConstMetric(descLoopHTTPRequests, prometheus.CounterValue, float64(s.Requests), name)
	for kind, v := range map[string]uint64{"handoff": s.Handoffs, "head_timeout": s.HeadTimeouts, "idle_timeout": s.IdleTimeouts,
		"stream_idle_timeout": s.StreamTimeouts, "connect_timeout": s.ConnectTimeouts, "connect_failure": s.ConnectFailures,
		"stale_retry": s.StaleRetries, "interim": s.Interim, "bad_response": s.BadResponses, "pool_reused": s.PoolReused,
		"pool_full": s.PoolFull, "pool_idle_closed": s.PoolIdleClosed, "pool_idle_timeout": s.PoolIdleTimeout,
		"mismatch": s.Mismatches, "drain_closed": s.DrainClosed, "park": s.Parks, "pool_retired": s.PoolRetired} {
		ch <- prometheus.MustNewConstMetric(descLoopHTTPEvents, prometheus.CounterValue, float64(v), name, kind)
	}
}

// registerLoopMetrics adds the collector of the Groups in stats, and of the HTTP engines in
// http, to reg; with none it adds nothing.
func registerLoopMetrics(reg *prometheus.Registry, stats map[string]func() evloop.Stats, http map[string]func() httpfwd.LoopStats) error {
	if len(stats) == 0 {
		return nil
	}
	return reg.Register(loopCollector{stats: stats, http: http})
}
