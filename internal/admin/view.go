package admin

// Cluster is one Envoy-style cluster, outbound|PORT|SUBSET|HOST, as the data plane reports it.
// The admin API defines what it reads, and cmd fills it from the proxy, so that the data plane
// knows nothing of the admin API and the admin API nothing of the data plane's insides.
type Cluster struct {
	Name      string
	Host      string
	Namespace string
	Port      uint32
	// Resolution is the ServiceEntry resolution (STATIC, DNS, NONE, ...).
	Resolution string
	Endpoints  []Endpoint
}

// Endpoint is one endpoint of a Cluster with its health and counters.
type Endpoint struct {
	// Address is "ip:port", "name:port" for a DNS endpoint, or a unix socket path.
	Address string
	// Hostname is the name of a DNS endpoint.
	Hostname string
	Unix     bool
	Weight   uint32
	Region   string
	Zone     string
	SubZone  string
	Network  string
	// Priority is the locality priority from the proxy, 0 the closest.
	Priority int
	// Ejected is Envoy's failed_outlier_check; Failing means the last connect failed.
	Ejected bool
	Failing bool
	Counts  Counts
}

// Counts are Envoy's per-host stats of one endpoint.
type Counts struct {
	// CxActive, CxTotal and CxConnectFail count piped upstream connections and failed connects.
	CxActive, CxTotal, CxConnectFail uint64
	// RqActive, RqTotal and RqError count HTTP request attempts.
	RqActive, RqTotal, RqError uint64
	// Ejections counts the times passive health checking ejected the endpoint.
	Ejections uint64
}

// Locality is the endpoint's "region/zone/subzone", shortened as Istio writes it.
func (e Endpoint) Locality() string {
	switch {
	case e.SubZone != "":
		return e.Region + "/" + e.Zone + "/" + e.SubZone
	case e.Zone != "":
		return e.Region + "/" + e.Zone
	}
	return e.Region
}
