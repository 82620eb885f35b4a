package admin

import (
	"net/http"
	"sort"
)

// DNSJSON is /dns: the DNS proxy's address allocations and counters.
type DNSJSON struct {
	// Listen is the DNS proxy's address.
	Listen  string `json:"listen"`
	V4Range string `json:"v4_range"`
	V6Range string `json:"v6_range"`
	// Allocations are every host holding addresses, sorted by host; InUse is false for a host
	// that left the config, whose addresses are kept for it until the range needs them.
	Allocations []DNSAllocationJSON `json:"allocations"`
	// Exhausted counts hosts left without an address because the range was full.
	ExhaustedV4 uint64 `json:"exhausted_v4"`
	ExhaustedV6 uint64 `json:"exhausted_v6"`
	// Stats are the DNS proxy's counters, as the metrics meshentry_dns_* export them.
	Stats map[string]uint64 `json:"stats"`
}

// DNSAllocationJSON is one host's allocated addresses.
type DNSAllocationJSON struct {
	Host  string `json:"host"`
	V4    string `json:"v4,omitempty"`
	V6    string `json:"v6,omitempty"`
	InUse bool   `json:"in_use"`
}

// dns serves /dns; 404 when the DNS proxy is off.
func (a *api) dns(w http.ResponseWriter, _ *http.Request) {
	if a.cfg.DNS == nil {
		http.Error(w, "the DNS proxy is off (run --dns-listen)", http.StatusNotFound)
		return
	}
	d := a.cfg.DNS()
	sort.Slice(d.Allocations, func(i, j int) bool { return d.Allocations[i].Host < d.Allocations[j].Host })
	writeJSON(w, d)
}
