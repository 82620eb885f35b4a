package registry

import (
	"net/netip"
	"slices"
	"strings"
)

// BuildOption changes how Build makes a snapshot.
type BuildOption func(*buildOptions)

type buildOptions struct {
	autoAddresses AutoAddressFunc
	// workers bounds the goroutines that make the services; 0 is one per core.
	workers int
}

// AutoAddressFunc returns the addresses of hosts (sorted, each once). avoid holds the addresses
// other entries declare: an address inside one would take that entry's traffic, so none is
// given from them, and a host holding one from before is moved.
type AutoAddressFunc func(hosts []string, avoid []netip.Prefix) map[string][]netip.Addr

// WithAutoAddresses gives the services that Istio's DNS proxy would auto-allocate for (see
// NeedsAutoAddress) the addresses alloc returns for their host, which then match exactly as
// declared single addresses do. alloc is called once per Build with the sorted eligible hosts;
// it holds the allocation state, so the snapshot stays immutable and the state outlives it.
func WithAutoAddresses(alloc AutoAddressFunc) BuildOption {
	return func(o *buildOptions) { o.autoAddresses = alloc }
}

// OptOutLabel set to "false" on a ServiceEntry keeps its hosts out of auto-allocation, as the
// label of the same name does in Istio.
const OptOutLabel = "networking.istio.io/enable-autoallocate-ip"

// NeedsAutoAddress reports whether svc gets an allocated address when the DNS proxy is on: a
// non-wildcard host without declared addresses, with a TCP-family or protocol-less port (HTTP
// and TLS are routed by name anyway), whose resolution is not NONE (a NONE entry dials the
// address the application asked for, which a virtual one is not), and not opted out.
func NeedsAutoAddress(svc *Service) bool {
	if svc.Wildcard || len(svc.Addresses) > 0 || svc.Resolution == ResolutionNone {
		return false
	}
	if svc.Source != nil && strings.EqualFold(svc.Source.Labels[OptOutLabel], "false") {
		return false
	}
	for _, p := range svc.Ports {
		if p.Family&(FamilyTCP|FamilyAuto) != 0 {
			return true
		}
	}
	return false
}

func assignAutoAddresses(svcs []*Service, alloc AutoAddressFunc) {
	var hosts []string
	var declared []netip.Prefix
	for _, svc := range svcs {
		switch {
		case NeedsAutoAddress(svc):
			hosts = append(hosts, svc.Host)
		case !svc.AutoAllocated:
			declared = append(declared, svc.Addresses...)
		}
	}
	if len(hosts) == 0 {
		return
	}
	slices.Sort(hosts)
	got := alloc(slices.Compact(hosts), declared)
	for _, svc := range svcs {
		if !NeedsAutoAddress(svc) {
			continue
		}
		for _, a := range got[svc.Host] {
			if a.IsValid() {
				svc.Addresses = append(svc.Addresses, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		svc.AutoAllocated = len(svc.Addresses) > 0
	}
}
