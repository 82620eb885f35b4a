// Package registry turns valid documents into an immutable, versioned Snapshot of services with
// the indexes the proxy and explain use to match traffic the way an Istio sidecar does.
package registry

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/meshentry/meshentry/internal/config"
)

// Family is how a port's declared protocol makes the sidecar treat its traffic.
type Family uint8

const (
	// FamilyAuto is a port with no protocol: plaintext HTTP is routed by Host, the rest as TCP.
	FamilyAuto Family = 1 << iota
	// FamilyHTTP covers HTTP, HTTP2, GRPC, GRPC-WEB and HTTP_PROXY: routed by Host/:authority.
	FamilyHTTP
	// FamilyTLS covers TLS and HTTPS: routed by SNI, passed through.
	FamilyTLS
	// FamilyTCP covers TCP and the opaque protocols (MONGO, MYSQL, REDIS, ...): routed by address and port.
	FamilyTCP
	// FamilyUDP is declared but not proxied.
	FamilyUDP
)

// String names the family for explain output.
func (f Family) String() string {
	switch f {
	case FamilyAuto:
		return "auto"
	case FamilyHTTP:
		return "http"
	case FamilyTLS:
		return "tls"
	case FamilyTCP:
		return "tcp"
	case FamilyUDP:
		return "udp"
	}
	return "unknown"
}

// ProtocolFamily maps an Istio port protocol name (case-insensitive) to its family.
func ProtocolFamily(protocol string) Family {
	switch strings.ToUpper(protocol) {
	case "":
		return FamilyAuto
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY":
		return FamilyHTTP
	case "HTTPS", "TLS":
		return FamilyTLS
	case "UDP":
		return FamilyUDP
	}
	return FamilyTCP
}

// Resolution is how a service's endpoints are found.
type Resolution uint8

// Resolutions, as ServiceEntry names them.
const (
	ResolutionNone Resolution = iota
	ResolutionStatic
	ResolutionDNS
	ResolutionDNSRoundRobin
	// ResolutionDynamicDNS resolves the Host or SNI of each request, for wildcard hosts.
	ResolutionDynamicDNS
)

// String names the resolution as ServiceEntry spells it.
func (r Resolution) String() string {
	names := [...]string{"NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"}
	if int(r) < len(names) {
		return names[r]
	}
	return "UNKNOWN"
}

// Endpoint is one instance of a service on one service port.
type Endpoint struct {
	// Address is an IP, a DNS name to resolve, or a "unix://" socket path.
	Address string
	// IP is set when Address is an IP literal.
	IP netip.Addr
	// Unix is true for "unix://" endpoints, which have no port.
	Unix bool
	// Port is the port to dial for this service port after remapping (0 for unix sockets).
	Port     uint32
	Weight   uint32
	Locality string
	Network  string
	Labels   map[string]string
}

// Dial returns the address to dial: "ip:port", "name:port" or the socket path.
func (e *Endpoint) Dial() string {
	if e.Unix {
		return strings.TrimPrefix(e.Address, "unix://")
	}
	if e.IP.IsValid() {
		return netip.AddrPortFrom(e.IP, uint16(e.Port)).String()
	}
	return e.Address + ":" + strconv.FormatUint(uint64(e.Port), 10)
}

// Port is one port of a service with the endpoints that serve it.
type Port struct {
	Number     uint32
	Name       string
	Protocol   string
	Family     Family
	TargetPort uint32
	// Cluster is the Envoy cluster name Istio gives this service port: outbound|PORT||HOST.
	Cluster   string
	Endpoints []Endpoint
}

// Service is one host of one ServiceEntry: a ServiceEntry with N hosts gives N services.
type Service struct {
	Host      string
	Wildcard  bool
	Namespace string
	// Entry is the ServiceEntry's name; Source is the document it came from.
	Entry     string
	Source    *config.Document
	Addresses []netip.Prefix
	// AutoAllocated says Addresses were allocated (see WithAutoAddresses), not declared.
	AutoAllocated   bool
	Ports           []Port
	Resolution      Resolution
	MeshInternal    bool
	SubjectAltNames []string
	// exportAll, exportNone and exportTo decide which namespaces see the service.
	exportAll  bool
	exportNone bool
	exportTo   []string
}

// Port returns the service's port with this number, or nil.
func (s *Service) Port(number uint32) *Port {
	for i := range s.Ports {
		if s.Ports[i].Number == number {
			return &s.Ports[i]
		}
	}
	return nil
}

// VisibleTo reports whether a workload in namespace ns may use the service (exportTo).
func (s *Service) VisibleTo(ns string) bool {
	if s.exportAll {
		return true
	}
	if s.exportNone {
		return false
	}
	for _, n := range s.exportTo {
		if n == ns {
			return true
		}
	}
	return false
}

// ExportTo describes the visibility as the resolved list of namespaces ("*" for all, empty for none).
func (s *Service) ExportTo() []string {
	switch {
	case s.exportAll:
		return []string{"*"}
	case s.exportNone:
		return nil
	}
	return append([]string(nil), s.exportTo...)
}

// Location names MESH_INTERNAL or MESH_EXTERNAL.
func (s *Service) Location() string {
	if s.MeshInternal {
		return "MESH_INTERNAL"
	}
	return "MESH_EXTERNAL"
}

// hasSingleIP reports whether the service has a VIP that is one address rather than a range.
func (s *Service) hasSingleIP() bool {
	for _, p := range s.Addresses {
		if p.IsSingleIP() {
			return true
		}
	}
	return false
}
