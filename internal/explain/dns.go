package explain

import (
	"fmt"
	"io"
	"strings"

	"github.com/meshentry/meshentry/internal/dnsproxy"
	"github.com/meshentry/meshentry/internal/registry"
)

// DNSReport says what the DNS proxy of a workload's proxy answers for one name.
type DNSReport struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Answer is "registry" or "upstream" (forwarded to the upstream resolver).
	Answer string `json:"answer"`
	// CNAME is the registry host a search-domain expansion is answered with.
	CNAME     string   `json:"cname,omitempty"`
	A         []string `json:"a,omitempty"`
	AAAA      []string `json:"aaaa,omitempty"`
	Allocated bool     `json:"allocated,omitempty"`
	TTL       uint32   `json:"ttl,omitempty"`
	// Entry is the ServiceEntry the answer comes from, namespace/name, and where it is.
	Entry string `json:"entry,omitempty"`
	File  string `json:"file,omitempty"`
	Line  int    `json:"line,omitempty"`
	Why   string `json:"why"`
}

// ExplainDNS answers name as the DNS proxy of the proxy p describes would (its namespace, and
// its labels and root namespace, which pick the Sidecar that narrows the hosts answered), from s
// (built with the DNS proxy's allocation) and the client's search domains.
func ExplainDNS(s *registry.Snapshot, p registry.ScopeProxy, search []string, name string) DNSReport {
	ns := p.Namespace
	sc := registry.NewScope(s, p)
	visible := func(svc *registry.Service) bool { return sc.ImportsHost(svc.Namespace, svc.Host) }
	a := dnsproxy.Lookup(s, ns, visible, search, name)
	r := DNSReport{Name: strings.TrimSuffix(name, "."), Namespace: ns, Answer: "upstream",
		Why: "no ServiceEntry host visible to namespace " + ns + " has a single address under this name (or a search-domain expansion of it); the query is forwarded to the upstream resolver"}
	if !a.Registry {
		return r
	}
	r.Answer, r.Allocated, r.TTL = "registry", a.Allocated, a.TTL
	for _, ip := range a.A {
		r.A = append(r.A, ip.String())
	}
	for _, ip := range a.AAAA {
		r.AAAA = append(r.AAAA, ip.String())
	}
	if a.ViaSearch {
		r.CNAME = a.Host
	}
	if svc := a.Service; svc != nil {
		r.Entry = svc.Namespace + "/" + svc.Entry
		if svc.Source != nil {
			r.File, r.Line = svc.Source.File, svc.Source.Line
		}
	}
	switch {
	case a.Allocated:
		r.Why = "the entry declares no addresses; the DNS proxy answers with the addresses it allocated to the host"
	default:
		r.Why = "the entry's declared single addresses (CIDR blocks are not answered)"
	}
	if a.ViaSearch {
		r.Why += "; the name is the host with a search domain appended, answered as a CNAME to the host"
	}
	return r
}

// WriteText prints the report as explain's text output does.
func (r *DNSReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "name:         %s from namespace %s\n", r.Name, r.Namespace)
	fmt.Fprintf(w, "answer:       %s\n", r.Answer)
	if r.Entry != "" {
		fmt.Fprintf(w, "entry:        ServiceEntry %s", r.Entry)
		if r.File != "" {
			fmt.Fprintf(w, " (%s:%d)", r.File, r.Line)
		}
		fmt.Fprintln(w)
	}
	if r.CNAME != "" {
		fmt.Fprintf(w, "CNAME:        %s\n", r.CNAME)
	}
	if r.Answer == "registry" {
		fmt.Fprintf(w, "A:            %s\n", orNone(r.A))
		fmt.Fprintf(w, "AAAA:         %s\n", orNone(r.AAAA))
		fmt.Fprintf(w, "TTL:          %ds\n", r.TTL)
	}
	fmt.Fprintf(w, "why:          %s\n", r.Why)
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none: NOERROR, no records)"
	}
	return strings.Join(s, ", ")
}
