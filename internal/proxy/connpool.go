package proxy

import (
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/httpfwd"
)

// maxLimitClusters bounds the clusters whose connection-pool limits the proxy keeps across
// reloads; clusters beyond it still get limits, fresh on each snapshot, and are counted.
const maxLimitClusters = 4096

// poolLimits keeps each cluster's connection-pool limits across snapshots, so that connections
// opened under the last snapshot still count against the limit under the next, as one Envoy
// cluster's circuit breakers do while its settings stay the same.
type poolLimits struct {
	mu sync.Mutex
	m  map[string]*httpfwd.ClusterLimits
	// overflow counts clusters not kept because maxLimitClusters were.
	overflow uint64
}

// forCluster returns cluster's limits under s, the kept ones while their settings are unchanged.
func (l *poolLimits) forCluster(cluster string, s httpfwd.PoolSettings) *httpfwd.ClusterLimits {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cl, ok := l.m[cluster]; ok && cl.Settings == s {
		return cl
	}
	cl := &httpfwd.ClusterLimits{Settings: s}
	if l.m == nil {
		l.m = map[string]*httpfwd.ClusterLimits{}
	}
	if _, ok := l.m[cluster]; !ok && len(l.m) >= maxLimitClusters {
		l.overflow++
		return cl
	}
	l.m[cluster] = cl
	return cl
}

// retain drops the limits of clusters keep refuses.
func (l *poolLimits) retain(keep func(cluster string) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.m {
		if !keep(c) {
			delete(l.m, c)
		}
	}
}

// overflows sums the requests and connections the kept clusters' limits refused.
func (l *poolLimits) overflows() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n uint64
	for _, cl := range l.m {
		n += cl.Overflows()
	}
	return n
}

// poolSettings turns a connectionPool into the engine's settings; ok is false when it sets
// nothing the engine applies. Unset limits stay 0, which is unlimited: Istio sets Envoy's
// circuit breakers to 2^32-1 where a DestinationRule leaves them out.
func poolSettings(cp *networking.ConnectionPoolSettings) (s httpfwd.PoolSettings, ok bool) {
	if cp == nil {
		return s, false
	}
	tcp, h := cp.GetTcp(), cp.GetHttp()
	s.MaxConnections = int64(max(tcp.GetMaxConnections(), 0))
	s.ConnectTimeout = positive(tcp.GetConnectTimeout())
	if ka := tcp.GetTcpKeepalive(); ka != nil {
		// Unset fields keep the system's values, as Envoy leaves them to the kernel.
		s.KeepAlive = net.KeepAliveConfig{Enable: true, Idle: -1, Interval: -1, Count: -1}
		if d := positive(ka.GetTime()); d > 0 {
			s.KeepAlive.Idle = d
		}
		if d := positive(ka.GetInterval()); d > 0 {
			s.KeepAlive.Interval = d
		}
		if ka.GetProbes() > 0 {
			s.KeepAlive.Count = int(min(ka.GetProbes(), 1<<16))
		}
	}
	s.MaxPending = int64(max(h.GetHttp1MaxPendingRequests(), 0))
	if s.MaxConnections > 0 && h.GetHttp1MaxPendingRequests() == 0 {
		// Unset: Istio's unlimited pending queue, bounded here by the wait itself.
		s.MaxPending = 1<<32 - 1
	}
	s.MaxRequests = int64(max(h.GetHttp2MaxRequests(), 0))
	s.MaxRequestsPerConn = int64(max(h.GetMaxRequestsPerConnection(), 0))
	if r := h.GetMaxRetries(); r > 0 {
		s.MaxAttempts = int(min(r, 1<<20)) + 1
	}
	s.IdleTimeout = positive(h.GetIdleTimeout())
	return s, s != httpfwd.PoolSettings{}
}

// positive is d as a time.Duration, 0 when unset or not positive.
func positive(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return max(d.AsDuration(), 0)
}
