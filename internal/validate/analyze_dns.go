package validate

import (
	"fmt"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// AnalyzeOption changes what Analyze knows of the proxy that will serve the documents.
type AnalyzeOption func(*analysis)

// WithDNSProxy analyses for a proxy whose DNS proxy answers with allocated addresses: entries
// that get one no longer contest their port, and ME2001 says so.
func WithDNSProxy() AnalyzeOption { return func(a *analysis) { a.dnsProxy = true } }

// autoAllocated reports whether the DNS proxy gives the entry's hosts addresses of their own:
// it has no addresses (checked by the caller), its resolution is not NONE and a host is not a
// wildcard, and the entry is not opted out by label. The registry's NeedsAutoAddress decides
// the same per host.
func autoAllocated(d *config.Document) bool {
	se := d.ServiceEntry()
	if se == nil || se.Resolution == networking.ServiceEntry_NONE || strings.EqualFold(d.Labels["networking.istio.io/enable-autoallocate-ip"], "false") {
		return false
	}
	for _, h := range se.Hosts {
		if !strings.HasPrefix(h, "*") {
			return true
		}
	}
	return false
}

// dnsProxyPortNote is ME2001 when the DNS proxy splits the port: a note, not a warning.
func (a *analysis) dnsProxyPortNote(loser, winner tcpClaim) {
	n := loser.port.Number
	r := report{doc: loser.doc}
	r.add(diag.Info, CodeTCPPortClash, at("spec.ports", loser.index, ".number"), fmt.Sprintf(
		"port %d (%s) has no spec.addresses, as %s (%s) has none; the DNS proxy gives each host an allocated address, "+
			"so clients that resolve through it reach each entry on its own address; a client connecting to any other address on port %d reaches neither",
		n, describeProtocol(loser.port.Protocol), qualifiedName(winner.doc), position(winner.doc, at("spec.ports", winner.index, ".number")), n))
	a.diags = append(a.diags, r.diags...)
}

// NoAutoAddress is ME2010 for host of d: the DNS proxy's IPv4 range is full, so the host gets no
// IPv4 address, its A queries go upstream, and its port is matched by port alone.
func NoAutoAddress(d *config.Document, host string) diag.Diagnostic {
	r := report{doc: d}
	field := "spec.hosts"
	if se := d.ServiceEntry(); se != nil {
		for i, h := range se.Hosts {
			if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
				field = at("spec.hosts", i, "")
				break
			}
		}
	}
	r.warnf(CodeNoAutoAddress, field,
		"host %s gets no allocated IPv4 address: the DNS proxy's range (--dns-vip-cidr) is full; widen it or give the entry spec.addresses", host)
	return r.diags[0]
}
