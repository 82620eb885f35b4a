package admin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// ClustersJSON is /clusters?format=json, in the shape of Envoy's admin.v3.Clusters.
type ClustersJSON struct {
	ClusterStatuses []ClusterStatusJSON `json:"cluster_statuses"`
}

// ClusterStatusJSON is one cluster, as Envoy's admin.v3.ClusterStatus.
type ClusterStatusJSON struct {
	Name         string           `json:"name"`
	AddedViaAPI  bool             `json:"added_via_api"`
	HostStatuses []HostStatusJSON `json:"host_statuses,omitempty"`
}

// HostStatusJSON is one endpoint, as Envoy's admin.v3.HostStatus.
type HostStatusJSON struct {
	Address      AddressJSON      `json:"address"`
	Stats        []StatJSON       `json:"stats"`
	HealthStatus HealthStatusJSON `json:"health_status"`
	Weight       uint32           `json:"weight"`
	Hostname     string           `json:"hostname,omitempty"`
	Priority     int              `json:"priority,omitempty"`
	Locality     *LocalityJSON    `json:"locality,omitempty"`
}

// AddressJSON is Envoy's config.core.v3.Address: a socket address or a pipe (unix socket).
type AddressJSON struct {
	SocketAddress *SocketAddressJSON `json:"socket_address,omitempty"`
	Pipe          *PipeJSON          `json:"pipe,omitempty"`
}

// SocketAddressJSON is an address and port.
type SocketAddressJSON struct {
	Address   string `json:"address"`
	PortValue uint32 `json:"port_value"`
}

// PipeJSON is a unix socket path.
type PipeJSON struct {
	Path string `json:"path"`
}

// StatJSON is one per-host stat; as in Envoy's proto JSON the value is a string, omitted when 0,
// and gauges carry type GAUGE.
type StatJSON struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
	Type  string `json:"type,omitempty"`
}

// HealthStatusJSON is Envoy's admin.v3.HostHealthStatus.
type HealthStatusJSON struct {
	FailedOutlierCheck bool   `json:"failed_outlier_check,omitempty"`
	EDSHealthStatus    string `json:"eds_health_status"`
}

// LocalityJSON is Envoy's config.core.v3.Locality.
type LocalityJSON struct {
	Region  string `json:"region,omitempty"`
	Zone    string `json:"zone,omitempty"`
	SubZone string `json:"sub_zone,omitempty"`
}

// Number returns the stat's value; an omitted value is 0.
func (s StatJSON) Number() uint64 {
	n, _ := strconv.ParseUint(s.Value, 10, 64)
	return n
}

func (a *api) clusters(w http.ResponseWriter, r *http.Request) {
	cs := a.clusterList()
	if wantsJSON(r) {
		writeJSON(w, clustersJSON(cs))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	bw := bufio.NewWriter(w)
	writeClustersText(bw, cs)
	bw.Flush()
}

// hostStat is one per-host line of /clusters, in Envoy's order: counters, then gauges.
type hostStat struct {
	name  string
	gauge bool
	value func(Counts) uint64
}

var hostStats = []hostStat{
	{name: "cx_active", gauge: true, value: func(c Counts) uint64 { return c.CxActive }},
	{name: "cx_connect_fail", value: func(c Counts) uint64 { return c.CxConnectFail }},
	{name: "cx_total", value: func(c Counts) uint64 { return c.CxTotal }},
	{name: "rq_active", gauge: true, value: func(c Counts) uint64 { return c.RqActive }},
	{name: "rq_error", value: func(c Counts) uint64 { return c.RqError }},
	{name: "rq_success", value: func(c Counts) uint64 {
		return c.RqTotal - min(c.RqTotal, c.RqError+c.RqActive)
	}},
	{name: "rq_total", value: func(c Counts) uint64 { return c.RqTotal }},
	// Envoy counts ejections per cluster (outlier_detection.ejections_enforced_total); per host
	// they say which endpoint keeps failing, under a name of meshentry's own.
	{name: "ejections_total", value: func(c Counts) uint64 { return c.Ejections }},
}

// healthFlags is Envoy's health_flags text: "healthy", or the flags that keep the host out.
func healthFlags(ep Endpoint) string {
	if ep.Ejected {
		return "/failed_outlier_check"
	}
	return "healthy"
}

// writeClustersText writes Envoy's /clusters text: one "cluster::host::stat::value" line per stat
// and attribute of each endpoint, after the cluster's own observability_name line.
func writeClustersText(w *bufio.Writer, cs []Cluster) {
	for _, c := range cs {
		w.WriteString(c.Name + "::observability_name::" + c.Name + "\n")
		for _, ep := range c.Endpoints {
			prefix := c.Name + "::" + ep.Address + "::"
			line := func(k, v string) { w.WriteString(prefix + k + "::" + v + "\n") }
			for _, s := range hostStats {
				line(s.name, strconv.FormatUint(s.value(ep.Counts), 10))
			}
			line("hostname", ep.Hostname)
			line("health_flags", healthFlags(ep))
			line("weight", strconv.FormatUint(uint64(ep.Weight), 10))
			line("region", ep.Region)
			line("zone", ep.Zone)
			line("sub_zone", ep.SubZone)
			line("canary", "false")
			line("priority", strconv.Itoa(ep.Priority))
			line("success_rate", "-1")
			line("local_origin_success_rate", "-1")
		}
	}
}

// clustersJSON converts the proxy's view to Envoy's JSON shape.
func clustersJSON(cs []Cluster) ClustersJSON {
	out := ClustersJSON{ClusterStatuses: []ClusterStatusJSON{}}
	for _, c := range cs {
		st := ClusterStatusJSON{Name: c.Name, AddedViaAPI: true}
		for _, ep := range c.Endpoints {
			st.HostStatuses = append(st.HostStatuses, hostJSON(ep))
		}
		out.ClusterStatuses = append(out.ClusterStatuses, st)
	}
	return out
}

func hostJSON(ep Endpoint) HostStatusJSON {
	h := HostStatusJSON{
		Address:      addressJSON(ep),
		Weight:       ep.Weight,
		Hostname:     ep.Hostname,
		Priority:     ep.Priority,
		HealthStatus: HealthStatusJSON{FailedOutlierCheck: ep.Ejected, EDSHealthStatus: "HEALTHY"},
	}
	if ep.Region != "" || ep.Zone != "" || ep.SubZone != "" {
		h.Locality = &LocalityJSON{Region: ep.Region, Zone: ep.Zone, SubZone: ep.SubZone}
	}
	for _, s := range hostStats {
		v := s.value(ep.Counts)
		st := StatJSON{Name: s.name}
		if v != 0 {
			st.Value = strconv.FormatUint(v, 10)
		}
		if s.gauge {
			st.Type = "GAUGE"
		}
		h.Stats = append(h.Stats, st)
	}
	return h
}

// addressJSON splits an endpoint's dial address into Envoy's address forms.
func addressJSON(ep Endpoint) AddressJSON {
	if ep.Unix {
		return AddressJSON{Pipe: &PipeJSON{Path: ep.Address}}
	}
	if ap, err := netip.ParseAddrPort(ep.Address); err == nil {
		return AddressJSON{SocketAddress: &SocketAddressJSON{Address: ap.Addr().String(), PortValue: uint32(ap.Port())}}
	}
	host, port := ep.Address, uint64(0)
	if i := strings.LastIndexByte(ep.Address, ':'); i >= 0 {
		host = ep.Address[:i]
		port, _ = strconv.ParseUint(ep.Address[i+1:], 10, 16)
	}
	return AddressJSON{SocketAddress: &SocketAddressJSON{Address: host, PortValue: uint32(port)}}
}

// writeJSON answers v as indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
