package route

import "sort"

// VirtualHost is one domain's compiled rules on one port, in match order, for consumers such as
// the xDS translator that rebuild the table in another form.
type VirtualHost struct {
	Domain string
	Routes []*HTTPRoute
	// NotFound answers a request that no rule matches (Envoy's 404 with the NR flag).
	NotFound *HTTPRoute
}

// HTTPPorts lists, in order, the ports where gateway (Mesh for a sidecar) has virtual hosts.
func (t *Table) HTTPPorts(gateway string) []uint32 {
	gt := t.gateway(gateway)
	if gt == nil {
		return nil
	}
	out := make([]uint32, 0, len(gt.http))
	for p := range gt.http {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// VirtualHosts lists gateway's virtual hosts on port: exact domains sorted, then wildcards from
// the longest, the order Envoy's domain search gives them.
func (t *Table) VirtualHosts(gateway string, port uint32) []VirtualHost {
	gt := t.gateway(gateway)
	if gt == nil || gt.http[port] == nil {
		return nil
	}
	ht := gt.http[port]
	out := make([]VirtualHost, 0, len(ht.exact)+len(ht.wild))
	for _, vh := range ht.exact {
		out = append(out, exportVhost(vh))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	for _, vh := range ht.wild {
		out = append(out, exportVhost(vh))
	}
	return out
}

func exportVhost(vh *vhost) VirtualHost {
	v := VirtualHost{Domain: vh.domain, NotFound: vh.notFound, Routes: make([]*HTTPRoute, 0, len(vh.rules))}
	for _, r := range vh.rules {
		v.Routes = append(v.Routes, r.out)
	}
	return v
}
