package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// istioBuckets are Envoy's default histogram buckets, which Istio's sidecars use for the duration
// (milliseconds) and the size (bytes) histograms alike unless a pod's
// sidecar.istio.io/statsHistogramBuckets annotation changes them; keeping them lets dashboards'
// histogram_quantile queries read the same le boundaries.
var istioBuckets = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
	60000, 300000, 600000, 1800000, 3600000}

// unknown is how Istio writes a label whose value it does not know.
const unknown = "unknown"

// peerLabels are the labels of Istio's standard metrics, in the order its stats filter declares
// them; httpLabels and tcpLabels add what each kind of traffic has. Istio's TCP metrics carry no
// response code and no gRPC status.
var peerLabels = []string{
	"reporter",
	"source_workload", "source_canonical_service", "source_canonical_revision",
	"source_workload_namespace", "source_principal", "source_app", "source_version", "source_cluster",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_app", "destination_version",
	"destination_service", "destination_service_name", "destination_service_namespace",
	"destination_canonical_service", "destination_canonical_revision", "destination_cluster",
	"request_protocol",
}

var (
	httpLabels = append(append([]string(nil), peerLabels...),
		"response_code", "grpc_response_status", "response_flags", "connection_security_policy")
	tcpLabels = append(append([]string(nil), peerLabels...), "response_flags", "connection_security_policy")
)

// sourceLabels are the values of the first labels of peerLabels, the same in every series.
type sourceLabels []string

func newSourceLabels(s Source) sourceLabels {
	orUnknown := func(v string) string {
		if v == "" {
			return unknown
		}
		return v
	}
	ns := s.Namespace
	if ns == "" {
		ns = "default"
	}
	cluster := s.Cluster
	if cluster == "" {
		cluster = "Kubernetes"
	}
	workload := orUnknown(s.Workload)
	// Istio's canonical service is the app label, else the workload name; the canonical
	// revision is the version label, else "latest".
	canonical := workload
	if s.App != "" {
		canonical = s.App
	}
	revision := "latest"
	if s.Version != "" {
		revision = s.Version
	}
	return sourceLabels{
		"source", // reporter: meshentry sits beside the client, as a sidecar's outbound side
		workload, canonical, revision, ns,
		unknown, // source_principal: no mTLS identity yet
		orUnknown(s.App), orUnknown(s.Version), cluster,
	}
}

// istioVecs are the eight metric families of Istio's standard metrics.
type istioVecs struct {
	requests             *prometheus.CounterVec
	duration             *prometheus.HistogramVec
	requestBytes         *prometheus.HistogramVec
	responseBytes        *prometheus.HistogramVec
	tcpOpened, tcpClosed *prometheus.CounterVec
	tcpSent, tcpReceived *prometheus.CounterVec
}

func newIstioVecs() istioVecs {
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	histogram := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: istioBuckets}, httpLabels)
	}
	return istioVecs{
		requests:      counter("istio_requests_total", "Requests the proxy handled.", httpLabels),
		duration:      histogram("istio_request_duration_milliseconds", "Time from the request head to the last byte of the response, in milliseconds."),
		requestBytes:  histogram("istio_request_bytes", "Request body sizes in bytes."),
		responseBytes: histogram("istio_response_bytes", "Response body sizes in bytes."),
		tcpOpened:     counter("istio_tcp_connections_opened_total", "TCP connections opened.", tcpLabels),
		tcpClosed:     counter("istio_tcp_connections_closed_total", "TCP connections closed.", tcpLabels),
		tcpSent:       counter("istio_tcp_sent_bytes_total", "Bytes sent to the client on TCP connections, added when the connection closes.", tcpLabels),
		tcpReceived:   counter("istio_tcp_received_bytes_total", "Bytes received from the client on TCP connections, added when the connection closes.", tcpLabels),
	}
}

func (v istioVecs) collectors() []prometheus.Collector {
	return []prometheus.Collector{v.requests, v.duration, v.requestBytes, v.responseBytes,
		v.tcpOpened, v.tcpClosed, v.tcpSent, v.tcpReceived}
}

// destination holds the per-series label values after the source ones: what the record says.
type destination struct {
	host, name, namespace string
	protocol              string
}

// values lays out every label value of one series: source, destination, then extra (the values
// of the labels httpLabels or tcpLabels add after request_protocol).
func (s sourceLabels) values(d destination, extra ...string) []string {
	v := make([]string, 0, len(s)+12+len(extra))
	v = append(v, s...)
	v = append(v,
		unknown, unknown, unknown, unknown, unknown, // destination workload, namespace, principal, app, version
		d.host, d.name, d.namespace,
		unknown, unknown, unknown, // destination canonical service and revision, cluster: outside the mesh
		d.protocol,
	)
	return append(v, extra...)
}

// codeLabel is response_code as Envoy writes it: the status sent, or 0 when none was.
func codeLabel(status int) string { return strconv.Itoa(status) }
