package admin

import (
	"net/http"

	"github.com/meshentry/meshentry/internal/registry"
)

// RegistryJSON is /registry: every service of the snapshot serving, in precedence order.
type RegistryJSON struct {
	Version  uint64        `json:"version"`
	Services []ServiceJSON `json:"services"`
}

// ServiceJSON is one host of one ServiceEntry.
type ServiceJSON struct {
	Host       string   `json:"host"`
	Namespace  string   `json:"namespace"`
	Entry      string   `json:"service_entry"`
	Source     string   `json:"source,omitempty"`
	Addresses  []string `json:"addresses,omitempty"`
	Resolution string   `json:"resolution"`
	Location   string   `json:"location"`
	// ExportTo is the resolved visibility: ["*"] for every namespace, [] for none.
	ExportTo []string `json:"export_to"`
	// Visible says whether the proxy's own namespace sees the service.
	Visible bool       `json:"visible"`
	Ports   []PortJSON `json:"ports"`
}

// PortJSON is one service port with its cluster and endpoints.
type PortJSON struct {
	Number     uint32         `json:"number"`
	Name       string         `json:"name"`
	Protocol   string         `json:"protocol,omitempty"`
	TargetPort uint32         `json:"target_port,omitempty"`
	Cluster    string         `json:"cluster"`
	Endpoints  []EndpointJSON `json:"endpoints"`
}

// EndpointJSON is one endpoint as the ServiceEntry declares it.
type EndpointJSON struct {
	Address  string            `json:"address"`
	Port     uint32            `json:"port,omitempty"`
	Weight   uint32            `json:"weight,omitempty"`
	Locality string            `json:"locality,omitempty"`
	Network  string            `json:"network,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

func (a *api) registry(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, registryJSON(a.snapshot(), a.cfg.Namespace))
}

// registryJSON describes snap as seen from namespace ns.
func registryJSON(snap *registry.Snapshot, ns string) RegistryJSON {
	out := RegistryJSON{Version: snap.Version, Services: []ServiceJSON{}}
	for _, svc := range snap.Services {
		s := ServiceJSON{
			Host: svc.Host, Namespace: svc.Namespace, Entry: svc.Entry, Resolution: svc.Resolution.String(),
			Location: svc.Location(), ExportTo: svc.ExportTo(), Visible: svc.VisibleTo(ns), Ports: []PortJSON{},
		}
		if s.ExportTo == nil {
			s.ExportTo = []string{}
		}
		if svc.Source != nil {
			s.Source = sourceOf(svc.Source.File, svc.Source.Line)
		}
		for _, a := range svc.Addresses {
			if a.IsSingleIP() {
				s.Addresses = append(s.Addresses, a.Addr().String())
			} else {
				s.Addresses = append(s.Addresses, a.String())
			}
		}
		for i := range svc.Ports {
			s.Ports = append(s.Ports, portJSON(&svc.Ports[i]))
		}
		out.Services = append(out.Services, s)
	}
	return out
}

func portJSON(p *registry.Port) PortJSON {
	out := PortJSON{Number: p.Number, Name: p.Name, Protocol: p.Protocol, TargetPort: p.TargetPort, Cluster: p.Cluster, Endpoints: []EndpointJSON{}}
	for _, ep := range p.Endpoints {
		out.Endpoints = append(out.Endpoints, EndpointJSON{
			Address: ep.Address, Port: ep.Port, Weight: ep.Weight, Locality: ep.Locality, Network: ep.Network, Labels: ep.Labels,
		})
	}
	return out
}

// RoutesJSON is /routes: for each service port the proxy's namespace sees, the cluster that
// matching picks for its host, which is what a route table would say with no VirtualServices.
type RoutesJSON struct {
	Routes []RouteJSON `json:"routes"`
}

// RouteJSON is one host on one port and where matching sends it.
type RouteJSON struct {
	Port    uint32 `json:"port"`
	Host    string `json:"host"`
	Cluster string `json:"cluster"`
	// ServiceEntry is the namespace/name of the entry that wins the host and port.
	ServiceEntry string `json:"service_entry"`
	Resolution   string `json:"resolution"`
}

func (a *api) routes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, routesJSON(a.snapshot(), a.cfg.Namespace))
}

// routesJSON asks the snapshot's own Match, for each visible service port, where its host goes.
// A service port that another entry wins (an older ServiceEntry for the same host) gets no route
// of its own, as a route table has one entry per domain.
func routesJSON(snap *registry.Snapshot, ns string) RoutesJSON {
	out := RoutesJSON{Routes: []RouteJSON{}}
	for _, svc := range snap.Services {
		if !svc.VisibleTo(ns) {
			continue
		}
		for i := range svc.Ports {
			p := &svc.Ports[i]
			m := snap.Match(registry.Query{Namespace: ns, Host: svc.Host, Port: p.Number, Protocol: registry.TrafficAny}, false)
			if m.Service != svc {
				continue
			}
			out.Routes = append(out.Routes, RouteJSON{Port: p.Number, Host: svc.Host, Cluster: m.Cluster,
				ServiceEntry: svc.Namespace + "/" + svc.Entry, Resolution: svc.Resolution.String()})
		}
	}
	return out
}
