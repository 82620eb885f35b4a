package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/meshentry/meshentry/internal/balance"
	"github.com/meshentry/meshentry/internal/registry"
)

// Cluster is the admin API's read-only view of one Envoy-style cluster: one service port,
// outbound|PORT|SUBSET|HOST, with the state of each of its endpoints.
type Cluster struct {
	// Name is the cluster name, outbound|PORT||HOST (no subsets yet).
	Name string
	// Host, Namespace and Port name the service port the cluster serves.
	Host      string
	Namespace string
	Port      uint32
	// Resolution is how the endpoints are found (STATIC, DNS, NONE, ...).
	Resolution registry.Resolution
	Endpoints  []EndpointStatus
}

// EndpointStatus is one endpoint of a Cluster: where it is, how it is weighted, whether passive
// health checking ejected it, and its traffic counters.
type EndpointStatus struct {
	// Address is what is dialled: "ip:port", "name:port" for DNS endpoints, or a socket path.
	Address string
	// Hostname is the DNS name of a DNS endpoint, empty for the others.
	Hostname string
	// Unix marks a unix-socket endpoint, whose Address is a path.
	Unix     bool
	Weight   uint32
	Locality balance.Locality
	Network  string
	// Priority is the endpoint's locality priority seen from this proxy, 0 the closest.
	Priority int
	// Ejected is set while passive health checking keeps the endpoint out (Envoy's
	// failed_outlier_check); Failing when its last connect failed.
	Ejected bool
	Failing bool
	Counts  EndpointCounts
}

// EndpointCounts are an endpoint's counters since it first appeared in a snapshot, named as
// Envoy's per-host stats are.
type EndpointCounts struct {
	// CxActive counts open piped connections (CONNECT tunnels, captured TCP and TLS) to it;
	// CxTotal those ever opened; CxConnectFail the connect attempts (and DNS lookups) that failed,
	// HTTP and piped alike.
	CxActive, CxTotal, CxConnectFail uint64
	// RqActive counts HTTP requests in flight to it; RqTotal those ever routed to it (one per
	// attempt, as Envoy counts); RqError those that ended with an upstream fault.
	RqActive, RqTotal, RqError uint64
	// Ejections counts the times passive health checking ejected it, or one of a DNS
	// endpoint's addresses.
	Ejections uint64
}

// epCounters are the live counters of one endpoint, bumped on the data path without locks.
type epCounters struct {
	cxActive, rqActive     atomic.Int64
	cxTotal, cxConnectFail atomic.Uint64
	rqTotal, rqError       atomic.Uint64
	ejections              atomic.Uint64
}

// endpointCounts keeps the counters of every endpoint by health key, so that totals survive a
// reload for the endpoints that stay. The set is replaced whole on Update (copy on write) and
// only read on the data path, where a map lookup by string allocates nothing. An address shared
// by several clusters shares one set of counters, since the engine reports requests by pool key.
type endpointCounts struct {
	set atomic.Pointer[counterSet]
	mu  sync.Mutex // serializes retain and change
}

// counterSet is a large base map and a small overlay of the keys changed since it was made (a
// nil value deletes the base's), so that a reload which changes a few keys copies the overlay
// only; the overlay is folded into a new base once it grows past maxOverlay.
type counterSet struct {
	base, over map[string]*epCounters
}

// get returns the counters of k, nil when k has none.
func (s *counterSet) get(k string) *epCounters {
	if s == nil {
		return nil
	}
	if e, ok := s.over[k]; ok {
		return e
	}
	return s.base[k]
}

// maxOverlay is when a counterSet's overlay is folded into its base: past an eighth of the base,
// or 1,024 keys for a small one, lookups through it would cost more than the copy.
func maxOverlay(base int) int { return 1024 + base/8 }

// retain makes the counter set the keys in live: counters of keys that stay are kept, new keys
// start at zero, the rest are dropped with their endpoints.
func (c *endpointCounts) retain(live func(yield func(string) bool), size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.set.Load()
	next := make(map[string]*epCounters, size)
	// The first set's counters come from one slab: at 100,000 services an allocation each
	// was a tenth of the proxy's startup. The slab lives while any of its counters does, so
	// at most the startup config's worth is kept for endpoints gone since; later sets, made
	// after a reload, allocate only the counters of keys that are new.
	var slab []epCounters
	if old == nil {
		slab = make([]epCounters, 0, size)
	}
	for k := range live {
		switch e := old.get(k); {
		case e != nil:
			next[k] = e
		case len(slab) < cap(slab):
			slab = append(slab, epCounters{})
			next[k] = &slab[len(slab)-1]
		default:
			next[k] = new(epCounters)
		}
	}
	c.set.Store(&counterSet{base: next})
}

// change moves the keys in keys to where lives says: kept (new ones from zero) or dropped.
func (c *endpointCounts) change(keys []string, lives func(string) bool) {
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.set.Load()
	if old == nil {
		old = &counterSet{}
	}
	next := &counterSet{base: old.base, over: make(map[string]*epCounters, len(old.over)+len(keys))}
	for k, e := range old.over {
		next.over[k] = e
	}
	for _, k := range keys {
		switch e := old.get(k); {
		case lives(k) && e == nil:
			next.over[k] = new(epCounters)
		case !lives(k) && e != nil:
			if _, inBase := old.base[k]; inBase {
				next.over[k] = nil
			} else {
				delete(next.over, k)
			}
		}
	}
	if len(next.over) > maxOverlay(len(next.base)) {
		base := make(map[string]*epCounters, len(next.base)+len(next.over))
		for k, e := range next.base {
			if _, changed := next.over[k]; !changed {
				base[k] = e
			}
		}
		for k, e := range next.over {
			if e != nil {
				base[k] = e
			}
		}
		next = &counterSet{base: base}
	}
	c.set.Store(next)
}

// of returns the counters of the endpoint a pool key names, nil for traffic that is not to one
// of ours (passthrough, the application's own destination).
func (c *endpointCounts) of(key string) *epCounters {
	ep, _ := splitKey(key)
	return c.set.Load().get(ep)
}

// requestRouted counts an HTTP request attempt sent to the upstream of key; requestDone ends it.
func (c *endpointCounts) requestRouted(key string) {
	if e := c.of(key); e != nil {
		e.rqActive.Add(1)
		e.rqTotal.Add(1)
	}
}

// requestDone ends an attempt requestRouted counted; err is the engine's verdict on the upstream.
func (c *endpointCounts) requestDone(key string, err error) {
	if e := c.of(key); e != nil {
		e.rqActive.Add(-1)
		if err != nil {
			e.rqError.Add(1)
		}
	}
}

// connectFailed counts a failed connect attempt or lookup against the endpoint of key.
func (c *endpointCounts) connectFailed(key string) {
	if e := c.of(key); e != nil {
		e.cxConnectFail.Add(1)
	}
}

// ejected counts an ejection of the endpoint of key, or of one of its addresses.
func (c *endpointCounts) ejected(key string) {
	if e := c.of(key); e != nil {
		e.ejections.Add(1)
	}
}

// connOpened counts a piped connection to the upstream of key and returns what connClosed takes.
func (c *endpointCounts) connOpened(key string) *epCounters {
	e := c.of(key)
	if e != nil {
		e.cxActive.Add(1)
		e.cxTotal.Add(1)
	}
	return e
}

// connClosed ends a piped connection connOpened counted; a nil e is traffic not to our endpoints.
func (e *epCounters) connClosed() {
	if e != nil {
		e.cxActive.Add(-1)
	}
}

// load reads e as EndpointCounts; active gauges that a lost Done left below zero read as zero.
func (e *epCounters) load() EndpointCounts {
	if e == nil {
		return EndpointCounts{}
	}
	return EndpointCounts{
		CxActive: uint64(max(e.cxActive.Load(), 0)), CxTotal: e.cxTotal.Load(), CxConnectFail: e.cxConnectFail.Load(),
		RqActive: uint64(max(e.rqActive.Load(), 0)), RqTotal: e.rqTotal.Load(), RqError: e.rqError.Load(),
		Ejections: e.ejections.Load(),
	}
}

// Clusters returns the clusters of the snapshot in use that the proxy's namespace sees, in the
// snapshot's service order and port order, with each endpoint's health and counters as they are
// now. When two entries declare the same host and port, the cluster is the winning (older) one's,
// as matching picks it and Istio keeps one cluster per name.
func (p *Proxy) Clusters() []Cluster {
	snap := p.Snapshot()
	var out []Cluster
	seen := map[string]bool{}
	for _, svc := range snap.Services {
		if !svc.VisibleTo(p.cfg.Namespace) {
			continue
		}
		for i := range svc.Ports {
			port := &svc.Ports[i]
			if seen[port.Cluster] {
				continue
			}
			seen[port.Cluster] = true
			c := Cluster{Name: port.Cluster, Host: svc.Host, Namespace: svc.Namespace, Port: port.Number, Resolution: svc.Resolution}
			for j := range port.Endpoints {
				c.Endpoints = append(c.Endpoints, p.endpointStatus(svc, &port.Endpoints[j], p.healthOf(port)))
			}
			out = append(out, c)
		}
	}
	return out
}

// endpointStatus reads one endpoint's state.
func (p *Proxy) endpointStatus(svc *registry.Service, ep *registry.Endpoint, h *balance.Health) EndpointStatus {
	key := healthKey(ep)
	loc := balance.ParseLocality(ep.Locality)
	st := EndpointStatus{
		Address: ep.Dial(), Unix: ep.Unix, Weight: max(ep.Weight, 1), Locality: loc, Network: ep.Network,
		Priority: balance.Priority(p.locality, loc), Ejected: h.Ejected(key), Failing: h.Failing(key),
		Counts: p.counts.of(key).load(),
	}
	if !ep.Unix && !ep.IP.IsValid() {
		st.Hostname = ep.Address
	}
	return st
}
