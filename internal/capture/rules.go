package capture

import (
	"fmt"
	"net/netip"
	"strings"
)

// The chains Setup creates, after Istio's ISTIO_OUTPUT and ISTIO_REDIRECT. Every chain of ours
// starts with ChainPrefix; Teardown recognises them by their exact names, so that another
// tool's chain with the same prefix is left alone.
const (
	ChainPrefix       = "MESHENTRY_"
	ChainOutput       = "MESHENTRY_OUTPUT"
	ChainRedirect     = "MESHENTRY_REDIRECT"
	ChainDNSRedirect  = "MESHENTRY_DNS_REDIRECT"
	ChainIncludeCIDRs = "MESHENTRY_INCLUDE"
)

// Family is an IP version: the rules for each go to their own iptables-restore.
type Family int

// The two families, in the order Setup applies them.
const (
	IPv4 Family = iota
	IPv6
)

// Families lists IPv4 then IPv6.
var Families = [...]Family{IPv4, IPv6}

// String names the family as people do.
func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Ruleset is the nat table's share of ours for one family: chain names and rules, in order.
type Ruleset struct {
	Chains []string
	// Rules are iptables-restore lines without the leading "-A".
	Rules []string
}

// Restore is the ruleset as iptables-restore --noflush input on its own: a fresh table of ours.
func (r Ruleset) Restore() string {
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, c := range r.Chains {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, l := range r.Rules {
		fmt.Fprintf(&b, "-A %s\n", l)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// Rules builds the nat rules for fam from o. It is a pure function, so a dry run prints exactly what
// Setup applies.
func Rules(o Options, fam Family) Ruleset {
	var r Ruleset
	chain := func(name string) { r.Chains = append(r.Chains, name) }
	add := func(format string, args ...any) { r.Rules = append(r.Rules, fmt.Sprintf(format, args...)) }
	chain(ChainOutput)
	chain(ChainRedirect)
	dns := o.DNSPort != 0
	if dns {
		chain(ChainDNSRedirect)
	}
	include := familyPrefixes(o.IncludeCIDRs, fam)
	needIncludeChain := !o.AllCIDRs && len(include) > 0 && len(o.IncludePorts) > 0
	if needIncludeChain {
		chain(ChainIncludeCIDRs)
	}

	// Only TCP and DNS enter our chains, so everything else costs the kernel one comparison.
	add("OUTPUT -p tcp -j %s", ChainOutput)
	if dns {
		add("OUTPUT -p udp --dport 53 -j %s", ChainOutput)
	}
	add("%s -p tcp -j REDIRECT --to-ports %d", ChainRedirect, o.CapturePort)
	if dns {
		add("%s -p udp -j REDIRECT --to-ports %d", ChainDNSRedirect, o.DNSPort)
		add("%s -p tcp -j REDIRECT --to-ports %d", ChainDNSRedirect, o.DNSPort)
	}
	// The proxy's own traffic, its DNS queries upstream included, is never captured.
	if o.ProxyUID >= 0 {
		add("%s -m owner --uid-owner %d -j RETURN", ChainOutput, o.ProxyUID)
	}
	if o.ProxyGID >= 0 {
		add("%s -m owner --gid-owner %d -j RETURN", ChainOutput, o.ProxyGID)
	}
	// DNS comes before the loopback exemption, so that a resolver on 127.0.0.53 is captured too,
	// as Istio's DNS capture does.
	if dns {
		add("%s -p udp --dport 53 -j %s", ChainOutput, ChainDNSRedirect)
		add("%s -p tcp --dport 53 -j %s", ChainOutput, ChainDNSRedirect)
	}
	// Loopback is left alone: the application's own local services, and every local address.
	add("%s -o lo -j RETURN", ChainOutput)
	add("%s -d %s -j RETURN", ChainOutput, loopback(fam))
	for _, p := range o.ExcludePorts {
		add("%s -p tcp --dport %s -j RETURN", ChainOutput, p)
	}
	for _, p := range familyPrefixes(o.ExcludeCIDRs, fam) {
		add("%s -d %s -j RETURN", ChainOutput, p)
	}
	addIncludes(o, include, add)
	return r
}

// addIncludes writes the rules that send included destinations to the redirect: a destination is
// captured when both its port and its address are included.
func addIncludes(o Options, include []netip.Prefix, add func(string, ...any)) {
	if !o.AllCIDRs && len(include) == 0 {
		return // this family captures no destination, only DNS
	}
	switch {
	case len(o.IncludePorts) == 0 && o.AllCIDRs:
		add("%s -p tcp -j %s", ChainOutput, ChainRedirect)
	case len(o.IncludePorts) == 0:
		for _, p := range include {
			add("%s -p tcp -d %s -j %s", ChainOutput, p, ChainRedirect)
		}
	case o.AllCIDRs:
		for _, p := range o.IncludePorts {
			add("%s -p tcp --dport %s -j %s", ChainOutput, p, ChainRedirect)
		}
	default: // both lists: the ports lead to a chain that checks the addresses
		for _, p := range o.IncludePorts {
			add("%s -p tcp --dport %s -j %s", ChainOutput, p, ChainIncludeCIDRs)
		}
		for _, p := range include {
			add("%s -d %s -j %s", ChainIncludeCIDRs, p, ChainRedirect)
		}
	}
}

func loopback(fam Family) string {
	if fam == IPv6 {
		return "::1/128"
	}
	return "127.0.0.0/8"
}

// familyPrefixes keeps the prefixes of fam; an IPv4-mapped IPv6 prefix counts as IPv6, as ip6tables
// reads it.
func familyPrefixes(ps []netip.Prefix, fam Family) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is4() == (fam == IPv4) {
			out = append(out, p)
		}
	}
	return out
}

// DryRun is what Setup would apply, both families, with the command each goes to.
func DryRun(o Options) string {
	var b strings.Builder
	for i, fam := range Families {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "# %s: %s --noflush\n", fam, restoreName(fam))
		b.WriteString(Rules(o, fam).Restore())
	}
	return b.String()
}

func restoreName(fam Family) string {
	if fam == IPv6 {
		return "ip6tables-restore"
	}
	return "iptables-restore"
}
