package envoy

import (
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshentry/meshentry/internal/registry"
)

// loadAssignment groups endpoints by locality, each with a locality weight (the sum of its
// endpoints' weights, never 0) and, when failover applies (Istio: outlier detection set; always
// for proxyless clients, which have no other way to prefer their own locality), a priority by
// how much of region/zone/subzone it shares with the node, renumbered 0..n without gaps as
// grpc-go demands.
func loadAssignment(name string, eps []registry.Endpoint, n Node, failover bool) *endpoint.ClusterLoadAssignment {
	type group struct {
		loc    string
		prio   uint32
		weight uint32
		lbs    []*endpoint.LbEndpoint
	}
	byLoc := map[string]*group{}
	var order []*group
	for _, e := range eps {
		g := byLoc[e.Locality]
		if g == nil {
			g = &group{loc: e.Locality}
			if failover && n.Locality != "" {
				g.prio = localityDistance(n.Locality, e.Locality)
			}
			byLoc[e.Locality] = g
			order = append(order, g)
		}
		w := e.Weight
		if w == 0 {
			w = 1
		}
		g.weight += w
		g.lbs = append(g.lbs, &endpoint.LbEndpoint{
			HostIdentifier:      &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{Address: endpointAddress(e)}},
			LoadBalancingWeight: wrapperspb.UInt32(w),
		})
	}
	// Renumber the distances used into 0..n.
	used := map[uint32]bool{}
	for _, g := range order {
		used[g.prio] = true
	}
	levels := make([]uint32, 0, len(used))
	for p := range used {
		levels = append(levels, p)
	}
	sort.Slice(levels, func(i, j int) bool { return levels[i] < levels[j] })
	rank := map[uint32]uint32{}
	for i, p := range levels {
		rank[p] = uint32(i)
	}
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	for _, g := range order {
		cla.Endpoints = append(cla.Endpoints, &endpoint.LocalityLbEndpoints{
			Locality:            ParseLocality(g.loc),
			LbEndpoints:         g.lbs,
			LoadBalancingWeight: wrapperspb.UInt32(g.weight),
			Priority:            rank[g.prio],
		})
	}
	return cla
}

// localityDistance is 0 for the same subzone, 1 same zone, 2 same region, 3 otherwise, Istio's
// failover order without failoverPriority.
func localityDistance(self, other string) uint32 {
	a := strings.SplitN(self, "/", 3)
	b := strings.SplitN(other, "/", 3)
	for len(a) < 3 {
		a = append(a, "")
	}
	for len(b) < 3 {
		b = append(b, "")
	}
	switch {
	case a[0] != b[0]:
		return 3
	case a[1] != b[1]:
		return 2
	case a[2] != b[2]:
		return 1
	}
	return 0
}

func endpointAddress(e registry.Endpoint) *core.Address {
	if e.Unix {
		return &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: strings.TrimPrefix(e.Address, "unix://")}}}
	}
	host := e.Address
	if e.IP.IsValid() {
		host = e.IP.String()
	}
	return socketAddress(host, e.Port)
}

func socketAddress(host string, port uint32) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Address:       host,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
	}}}
}
