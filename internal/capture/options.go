package capture

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Istio's defaults: the outbound capture port of istio-iptables, the DNS proxy's port and the
// sidecar's UID and GID.
const (
	DefaultCapturePort = 15001
	DefaultDNSPort     = 15053
	DefaultProxyUID    = 1337
)

// Options say what Setup captures. The zero value captures nothing useful; start from Defaults.
type Options struct {
	// CapturePort receives outbound TCP (REDIRECT --to-ports).
	CapturePort uint16
	// DNSPort receives outbound UDP and TCP to port 53; 0 leaves DNS alone.
	DNSPort uint16
	// ProxyUID and ProxyGID own the proxy's sockets, which are never captured, so that its own
	// connections and DNS queries upstream are not looped back to it; -1 exempts no UID or GID.
	ProxyUID, ProxyGID int
	// IncludeCIDRs are the destinations captured; nil with AllCIDRs captures every destination.
	IncludeCIDRs []netip.Prefix
	// AllCIDRs captures every destination ("*"), as istio-iptables' default.
	AllCIDRs bool
	// ExcludeCIDRs are never captured, whatever IncludeCIDRs say.
	ExcludeCIDRs []netip.Prefix
	// IncludePorts, when not empty, limit capture to these destination ports.
	IncludePorts []PortRange
	// ExcludePorts are never captured.
	ExcludePorts []PortRange
}

// Defaults are Istio's: capture every destination on 15001, DNS on 15053, UID and GID 1337 exempt.
func Defaults() Options {
	return Options{CapturePort: DefaultCapturePort, DNSPort: DefaultDNSPort,
		ProxyUID: DefaultProxyUID, ProxyGID: DefaultProxyUID, AllCIDRs: true}
}

// PortRange is one destination port or an inclusive range of them.
type PortRange struct{ First, Last uint16 }

// String is the range as iptables --dport takes it: "80" or "8000:8100".
func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d:%d", r.First, r.Last)
}

// ParsePorts reads a comma-separated list of ports and ranges ("80,8000-8100" or "8000:8100");
// "" is none.
func ParsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, f := range splitList(s) {
		lo, hi, isRange := strings.Cut(f, "-")
		if !isRange {
			lo, hi, isRange = strings.Cut(f, ":")
		}
		if !isRange {
			hi = lo
		}
		first, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", f, err)
		}
		last, err := parsePort(hi)
		if err != nil {
			return nil, fmt.Errorf("port %q: %w", f, err)
		}
		if last < first {
			return nil, fmt.Errorf("port range %q ends before it starts", f)
		}
		out = append(out, PortRange{First: first, Last: last})
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("not a port number from 1 to 65535")
	}
	return uint16(n), nil
}

// ParseCIDRs reads a comma-separated list of CIDR prefixes or single addresses; all reports "*",
// which istio-iptables reads as every destination. "" is none.
func ParseCIDRs(s string) (prefixes []netip.Prefix, all bool, err error) {
	for _, f := range splitList(s) {
		if f == "*" {
			all = true
			continue
		}
		var p netip.Prefix
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(f); err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			return nil, false, fmt.Errorf("CIDR %q: %w", f, err)
		}
		// iptables itself masks the host bits; doing it here keeps the printed rules the ones applied.
		prefixes = append(prefixes, p.Masked())
	}
	return prefixes, all, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate reports options that would build broken or looping rules.
func (o Options) Validate() error {
	if o.CapturePort == 0 {
		return fmt.Errorf("capture port must be set")
	}
	if o.DNSPort != 0 && o.DNSPort == o.CapturePort {
		return fmt.Errorf("DNS port and capture port are both %d", o.DNSPort)
	}
	if o.ProxyUID < -1 || o.ProxyGID < -1 {
		return fmt.Errorf("proxy UID and GID must be -1 (none) or a number")
	}
	if o.ProxyUID == -1 && o.ProxyGID == -1 {
		// Without an exemption the proxy's own upstream connections would be redirected to itself.
		return fmt.Errorf("a proxy UID or GID is needed, or the proxy's own connections loop back to it")
	}
	return nil
}
