package route

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// compiledVS is a VirtualService's http rules compiled for one gateway (or "mesh").
type compiledVS struct {
	doc   *config.Document
	hosts []string
	rules []*httpRule
}

func (b *builder) compileVS(doc *config.Document, gw string) (*compiledVS, []error) {
	cv := &compiledVS{doc: doc, hosts: hosts(doc)}
	var errs []error
	for i, r := range doc.VirtualService().Http {
		if r.Delegate != nil {
			// Delegation is not followed yet; leaving the rule out keeps it from matching with
			// no action at all.
			errs = append(errs, fmt.Errorf("VirtualService %s/%s: http[%d]: delegate is not supported; the rule is left out", doc.Namespace, doc.Name, i))
			continue
		}
		rule, err := compileHTTPRule(doc, i, r, b, gw)
		if err != nil {
			errs = append(errs, fmt.Errorf("VirtualService %s/%s: %w", doc.Namespace, doc.Name, err))
			continue
		}
		cv.rules = append(cv.rules, rule)
	}
	return cv, errs
}

// appliesOn reports whether any rule can match on port: Istio drops match blocks for another
// port, and a VirtualService left with no route on a port gives no virtual host there.
func (cv *compiledVS) appliesOn(port uint32) bool {
	for _, r := range cv.rules {
		if len(r.matches) == 0 {
			return true
		}
		for i := range r.matches {
			m := &r.matches[i]
			if m.excluded == "" && (m.port == 0 || m.port == port) {
				return true
			}
		}
	}
	return false
}

// vrules builds the rules' outcomes for port and the NotFound answer of their virtual host.
func (b *builder) vrules(cv *compiledVS, port uint32) ([]vrule, *HTTPRoute, []error) {
	var errs []error
	vrs := make([]vrule, 0, len(cv.rules))
	for _, rule := range cv.rules {
		out, err := b.outcome(cv.doc, rule, port)
		if err != nil {
			errs = append(errs, fmt.Errorf("VirtualService %s/%s: http[%d]: %w", cv.doc.Namespace, cv.doc.Name, rule.index, err))
			continue
		}
		vrs = append(vrs, vrule{rule: rule, out: out})
	}
	nf := &HTTPRoute{VirtualService: cv.doc.Namespace + "/" + cv.doc.Name, Doc: cv.doc, Index: -1, NotFound: true}
	return vrs, nf, errs
}

// covers reports whether host pattern p includes host (or pattern) h.
func covers(p, h string) bool {
	if p == h || p == "*" {
		return true
	}
	return strings.HasPrefix(p, "*.") && strings.HasSuffix(h, p[1:]) && len(h) > len(p)-1
}

// sidecarHTTP files the mesh VirtualServices port by port, as Istio's sidecar route
// configuration does: on each port a VirtualService takes the services there whose host it
// names (a wildcard host takes the services it is the most specific VirtualService host for),
// plus its hosts that name no service; on ports other than 80 it needs at least one HTTP service.
// A domain claimed twice keeps the older VirtualService.
func (b *builder) sidecarHTTP(gt *gwTable, cvs []*compiledVS) []error {
	var errs []error
	for _, port := range b.sidecarPorts() {
		svcs := b.servicesOn(port)
		claims := claimIndex(cvs, svcs)
		for _, cv := range cvs {
			if !cv.appliesOn(port) {
				continue
			}
			domains := domainsFor(cv, svcs, claims, port)
			if len(domains) == 0 {
				continue
			}
			vrs, nf, e := b.vrules(cv, port)
			errs = append(errs, e...)
			for _, d := range domains {
				gt.addVhost(port, d, vrs, nf, false)
			}
		}
	}
	return errs
}

// sidecarPorts are the ports where a sidecar routes HTTP by Host: the HTTP and auto ports of the
// services visible to it.
func (b *builder) sidecarPorts() []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for _, svc := range b.snap.Services {
		if !b.visible(svc) {
			continue
		}
		for _, p := range svc.Ports {
			if p.Family&(registry.FamilyHTTP|registry.FamilyAuto) != 0 && !seen[p.Number] {
				seen[p.Number] = true
				out = append(out, p.Number)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// servicesOn lists the visible services with port, one per host (the first in precedence order).
func (b *builder) servicesOn(port uint32) []*registry.Service {
	seen := map[string]bool{}
	var out []*registry.Service
	for _, svc := range b.snap.Services {
		if b.visible(svc) && svc.Port(port) != nil && !seen[svc.Host] {
			seen[svc.Host] = true
			out = append(out, svc)
		}
	}
	return out
}

// claimIndex gives each service the VirtualService that is most specific for it: one naming its
// host exactly, else the one with the longest wildcard covering it; the older wins a tie.
func claimIndex(cvs []*compiledVS, svcs []*registry.Service) map[string]*compiledVS {
	out := map[string]*compiledVS{}
	for _, svc := range svcs {
		var best *compiledVS
		bestLen := -1
		for _, cv := range cvs {
			for _, h := range cv.hosts {
				l := -1
				switch {
				case h == svc.Host:
					l = 1 << 20
				case covers(h, svc.Host):
					l = len(h)
				}
				if l > bestLen {
					best, bestLen = cv, l
				}
			}
		}
		if best != nil {
			out[svc.Host] = best
		}
	}
	return out
}

// domainsFor lists the domains a VirtualService takes on port: the HTTP services it matches and
// its hosts that match no service at all.
func domainsFor(cv *compiledVS, svcs []*registry.Service, claims map[string]*compiledVS, port uint32) []string {
	var nonRegistry, matched []string
	anyService := false
	for _, h := range cv.hosts {
		found := false
		for _, svc := range svcs {
			hit := h == svc.Host
			if strings.HasPrefix(h, "*") {
				hit = hostsOverlap(h, svc.Host)
				if hit && claims[svc.Host] != cv {
					found = true
					continue
				}
			}
			if !hit {
				continue
			}
			found, anyService = true, true
			if svc.Port(port).Family&(registry.FamilyHTTP|registry.FamilyAuto) != 0 {
				matched = append(matched, svc.Host)
			}
		}
		if !found {
			nonRegistry = append(nonRegistry, h)
		}
	}
	// Istio keeps only the VirtualServices that match a service on ports other than 80, and
	// gives the others their non-service hosts on port 80 alone.
	if port != 80 && (!anyService || len(matched) == 0) {
		return nil
	}
	return dedupe(append(matched, nonRegistry...))
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// gatewayHTTP files the VirtualServices bound to gateway gw under each HTTP server port, for the
// hosts both the server and the VirtualService name; several VirtualServices for one host are
// concatenated, oldest first, as Istio's gateway does.
func (b *builder) gatewayHTTP(gt *gwTable, cvs []*compiledVS, gw string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, srv := range b.gatewayServers(gw, true) {
		for _, cv := range cvs {
			if !cv.appliesOn(srv.port) {
				continue
			}
			inter := intersect(srv.hostsFor(cv.doc.Namespace), cv.hosts)
			if len(inter) == 0 {
				continue
			}
			vrs, nf, e := b.vrules(cv, srv.port)
			errs = append(errs, e...)
			for _, h := range inter {
				key := fmt.Sprintf("%d|%s|%p", srv.port, h, cv)
				if !seen[key] {
					seen[key] = true
					gt.addVhost(srv.port, h, vrs, nf, true)
				}
			}
		}
	}
	return errs
}

// server is one Gateway server: its port and its hosts ("ns/host", "*/host" when no namespace).
type server struct {
	gwNamespace string
	port        uint32
	hosts       []string
}

// hostsFor returns the server's hosts that a VirtualService in namespace ns may bind.
func (s *server) hostsFor(ns string) []string {
	var out []string
	for _, h := range s.hosts {
		hns, name, ok := strings.Cut(h, "/")
		if !ok {
			out = append(out, registry.NormalizeHost(h))
			continue
		}
		if hns == "*" || hns == ns || (hns == "." && ns == s.gwNamespace) {
			out = append(out, registry.NormalizeHost(name))
		}
	}
	return out
}

// gatewayServers lists Gateway gw's servers; with httpOnly, those that carry HTTP (plaintext or
// terminated TLS).
func (b *builder) gatewayServers(gw string, httpOnly bool) []server {
	var out []server
	for _, d := range b.snap.Documents {
		g := d.Gateway()
		if g == nil || d.Namespace+"/"+d.Name != gw {
			continue
		}
		for _, s := range g.Servers {
			fam := registry.ProtocolFamily(s.GetPort().GetProtocol())
			mode := s.GetTls().GetMode()
			terminated := fam == registry.FamilyTLS && mode != networking.ServerTLSSettings_PASSTHROUGH &&
				mode != networking.ServerTLSSettings_AUTO_PASSTHROUGH
			if !httpOnly || fam == registry.FamilyHTTP || terminated {
				out = append(out, server{gwNamespace: d.Namespace, port: s.GetPort().GetNumber(), hosts: s.Hosts})
			}
		}
	}
	return out
}

// intersect returns, for each pair that overlaps, the narrower of a server host and a
// VirtualService host, as Istio's host.Names.Intersection.
func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			switch {
			case covers(x, y):
				out = append(out, y)
			case covers(y, x):
				out = append(out, x)
			}
		}
	}
	return dedupe(out)
}
