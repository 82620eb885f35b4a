package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Descriptions of the Kubernetes source's status-writer metrics.
var (
	kubeStatusWritesDesc = prometheus.NewDesc("meshentry_kube_status_writes_total",
		"Status patches of validation findings sent to the API server, by result: written, failed, or rate_limited (waited for --kube-status-qps).",
		[]string{"result"}, nil)
	kubeStatusPendingDesc = prometheus.NewDesc("meshentry_kube_status_pending",
		"Objects whose status write waits to be sent.", nil, nil)
)

// registerMetrics adds the status writer's metrics to reg; nothing with --kube off.
func (r *kubeRun) registerMetrics(reg *prometheus.Registry) error {
	if r == nil {
		return nil
	}
	return reg.Register(kubeCollector{r: r})
}

// kubeCollector reads the status writer's counters at scrape time.
type kubeCollector struct{ r *kubeRun }

func (c kubeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- kubeStatusWritesDesc
	ch <- kubeStatusPendingDesc
}

func (c kubeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.src.StatusStats()
	for result, n := range map[string]uint64{"written": st.Written, "failed": st.Failed, "rate_limited": st.RateLimited} {
		ch <- prometheus.MustNewConstMetric(kubeStatusWritesDesc, prometheus.CounterValue, float64(n), result)
	}
	ch <- prometheus.MustNewConstMetric(kubeStatusPendingDesc, prometheus.GaugeValue, float64(st.Pending))
}
