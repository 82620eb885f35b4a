package route

import (
	"fmt"
	"net/netip"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// l4Match is one compiled tls or tcp match block.
type l4Match struct {
	sni             []string // tls only; the VirtualService's hosts when the block names none
	port            uint32
	subnets         []netip.Prefix
	sourceNamespace string
	excluded        string
}

// l4Rule is one tls or tcp rule with its outcome for each port it may be asked about.
type l4Rule struct {
	index   int
	hosts   []string
	matches []l4Match
	never   bool
	// dests says which destinations the VirtualService covers, for tcp binding.
	dests []l4Dest
	out   map[uint32]*L4Route
}

// l4Dest is a service a VirtualService covers: its ports and addresses (none: any address).
type l4Dest struct {
	ports []uint32
	addrs []netip.Prefix
}

// addL4 compiles a VirtualService's tls and tcp rules.
func (b *builder) addL4(gt *gwTable, doc *config.Document, gw string) []error {
	vs := doc.VirtualService()
	hs := hosts(doc)
	var errs []error
	for i, r := range vs.Tls {
		ms := make([]*networking.L4MatchAttributes, 0, len(r.Match))
		snis := make([][]string, 0, len(r.Match))
		for _, m := range r.Match {
			ms = append(ms, &networking.L4MatchAttributes{DestinationSubnets: m.DestinationSubnets, Port: m.Port,
				SourceLabels: m.SourceLabels, Gateways: m.Gateways, SourceNamespace: m.SourceNamespace})
			snis = append(snis, m.SniHosts)
		}
		rule, err := b.l4Rule(doc, i, hs, ms, snis, r.Route, gw)
		if err != nil {
			errs = append(errs, fmt.Errorf("VirtualService %s/%s: tls[%d]: %w", doc.Namespace, doc.Name, i, err))
			continue
		}
		gt.tls = append(gt.tls, rule)
	}
	for i, r := range vs.Tcp {
		rule, err := b.l4Rule(doc, i, hs, r.Match, nil, r.Route, gw)
		if err != nil {
			errs = append(errs, fmt.Errorf("VirtualService %s/%s: tcp[%d]: %w", doc.Namespace, doc.Name, i, err))
			continue
		}
		gt.tcp = append(gt.tcp, rule)
	}
	return errs
}

func (b *builder) l4Rule(doc *config.Document, i int, hs []string, ms []*networking.L4MatchAttributes, snis [][]string,
	route []*networking.RouteDestination, gw string) (*l4Rule, error) {
	rule := &l4Rule{index: i, hosts: hs, out: map[uint32]*L4Route{}}
	ports := map[uint32]bool{}
	for j, m := range ms {
		lm := l4Match{port: m.Port, sourceNamespace: m.SourceNamespace,
			excluded: b.excludedL4(m.SourceLabels, m.Gateways, gw, doc.Namespace)}
		if snis != nil {
			lm.sni = hs
			if len(snis[j]) > 0 {
				lm.sni = nil
				for _, s := range snis[j] {
					lm.sni = append(lm.sni, ResolveHost(s, doc.Namespace))
				}
			}
		}
		for _, s := range m.DestinationSubnets {
			p, err := parseSubnet(s)
			if err != nil {
				return nil, fmt.Errorf("match[%d].destinationSubnets: %w", j, err)
			}
			lm.subnets = append(lm.subnets, p)
		}
		if m.Port != 0 {
			ports[m.Port] = true
		}
		rule.matches = append(rule.matches, lm)
	}
	// A tls rule without match blocks gives Istio no filter chain; a tcp one takes everything.
	rule.never = snis != nil || len(rule.matches) > 0
	for _, m := range rule.matches {
		if m.excluded == "" {
			rule.never = false
		}
	}
	rule.never = rule.never || len(route) == 0
	b.coverL4(rule, ports, gw)
	for port := range ports {
		out := &L4Route{VirtualService: doc.Namespace + "/" + doc.Name, Doc: doc, Index: i}
		for _, d := range route {
			out.Route = append(out.Route, b.destination(d.Destination, d.Weight, doc.Namespace, port, true))
		}
		out.total = weighted(out.Route)
		rule.out[port] = out
	}
	return rule, nil
}

// coverL4 records the services a rule's hosts cover and adds their ports (and the gateway's
// server ports) to those the rule is built for.
func (b *builder) coverL4(rule *l4Rule, ports map[uint32]bool, gw string) {
	for _, svc := range b.snap.Services {
		if !b.visible(svc) {
			continue
		}
		for _, h := range rule.hosts {
			if !hostsOverlap(h, svc.Host) {
				continue
			}
			d := l4Dest{addrs: svc.Addresses}
			for _, p := range svc.Ports {
				d.ports = append(d.ports, p.Number)
				ports[p.Number] = true
			}
			rule.dests = append(rule.dests, d)
			break
		}
	}
	if gw != Mesh {
		for _, d := range b.snap.Documents {
			if g := d.Gateway(); g != nil && d.Namespace+"/"+d.Name == gw {
				for _, s := range g.Servers {
					ports[s.GetPort().GetNumber()] = true
				}
			}
		}
	}
}

// excludedL4 is excludedBy for tls and tcp blocks, where Istio requires the gateways and the
// sourceLabels both to hold.
func (b *builder) excludedL4(labels map[string]string, gateways []string, gw, ns string) string {
	if why := b.excludedBy(nil, gateways, gw, ns); why != "" {
		return why
	}
	return b.excludedBy(labels, nil, gw, ns)
}

// parseSubnet reads an IP or CIDR; a bare IP is a /32 or /128.
func parseSubnet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP or CIDR: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// TLS returns the tls rule that takes a connection with this SNI to dst:port, or nil. Among the
// rules that match, as Envoy picks filter chains, the longest destinationSubnets prefix holding
// dst wins, then an exact SNI over a wildcard and a longer wildcard over a shorter one; on a tie
// the older VirtualService and earlier rule win.
func (t *Table) TLS(sni string, port uint32, dst netip.Addr, gateway string) *L4Route {
	gt := t.gateway(gateway)
	if gt == nil {
		return nil
	}
	var best *L4Route
	bestScore := -1
	for _, rule := range gt.tls {
		if rule.never || !coversSNI(rule.hosts, sni) {
			continue
		}
		for i := range rule.matches {
			m := &rule.matches[i]
			if m.excluded != "" || !m.l4Holds(port, dst, t.proxy.Namespace) {
				continue
			}
			if s := m.subnetBits(dst)<<21 + sniScore(m.sni, sni); s > bestScore {
				if out := rule.out[port]; out != nil {
					best, bestScore = out, s
				}
			}
		}
	}
	return best
}

// TCP returns the tcp rule that takes a connection to dst:port, or nil: the first rule, oldest
// VirtualService first, whose VirtualService covers a service at dst:port and whose match holds.
func (t *Table) TCP(port uint32, dst netip.Addr, gateway string) *L4Route {
	gt := t.gateway(gateway)
	if gt == nil {
		return nil
	}
	sidecar := len(t.proxy.Gateways) == 0
	for _, rule := range gt.tcp {
		// At a sidecar the rule's hosts must name the service dialled; a gateway routes what its
		// server accepted.
		if rule.never || (sidecar && !rule.coversAddr(port, dst)) {
			continue
		}
		if len(rule.matches) == 0 {
			if out := rule.out[port]; out != nil {
				return out
			}
			continue
		}
		for i := range rule.matches {
			m := &rule.matches[i]
			if m.excluded == "" && m.l4Holds(port, dst, t.proxy.Namespace) {
				if out := rule.out[port]; out != nil {
					return out
				}
			}
		}
	}
	return nil
}

func (t *Table) gateway(gw string) *gwTable {
	if gw == "" {
		gw = t.first
	}
	return t.gateways[gw]
}

func (m *l4Match) l4Holds(port uint32, dst netip.Addr, src string) bool {
	if m.port != 0 && m.port != port {
		return false
	}
	if m.sourceNamespace != "" && m.sourceNamespace != src {
		return false
	}
	if len(m.subnets) == 0 {
		return true
	}
	for _, p := range m.subnets {
		if dst.IsValid() && p.Contains(dst.Unmap()) {
			return true
		}
	}
	return false
}

// subnetBits is the length of the longest of the block's subnets that holds dst, 0 for none.
func (m *l4Match) subnetBits(dst netip.Addr) int {
	best := 0
	for _, p := range m.subnets {
		if dst.IsValid() && p.Contains(dst.Unmap()) && p.Bits() > best {
			best = p.Bits()
		}
	}
	return best
}

// coversAddr reports whether the rule's VirtualService covers a service reached at dst:port.
func (r *l4Rule) coversAddr(port uint32, dst netip.Addr) bool {
	for _, d := range r.dests {
		has := false
		for _, p := range d.ports {
			has = has || p == port
		}
		if !has {
			continue
		}
		if len(d.addrs) == 0 {
			return true
		}
		for _, a := range d.addrs {
			if dst.IsValid() && a.Contains(dst.Unmap()) {
				return true
			}
		}
	}
	return false
}

func coversSNI(hosts []string, sni string) bool {
	for _, h := range hosts {
		if h == "*" || registry.HostMatches(h, sni) {
			return true
		}
	}
	return false
}

// sniScore ranks how specifically a list of sniHosts matches sni: -1 none, exact highest.
func sniScore(patterns []string, sni string) int {
	best := -1
	for _, p := range patterns {
		switch {
		case p == sni:
			return 1 << 20
		case p == "*":
			best = max(best, 0)
		case registry.HostMatches(p, sni):
			best = max(best, len(p))
		}
	}
	return best
}
