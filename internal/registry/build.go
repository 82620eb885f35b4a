package registry

import (
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"weak"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// Snapshot is one immutable generation of the registry. Readers share it freely; a reload builds a
// new one and swaps a pointer, so nothing here is ever written after Build returns.
type Snapshot struct {
	Version uint64
	// Services in precedence order: the older ServiceEntry first, then load order.
	Services []*Service
	// Documents are every valid document the snapshot was built from, all kinds.
	Documents []*config.Document

	exact    layered[string]
	wildcard layered[string] // keyed by the suffix after "*."
	ips      layered[netip.Addr]
	cidrs    []cidrBucket // longest prefix first
	portOnly map[uint32]chunked
	byPort   map[uint32]chunked
	// byFile are the services each file's ServiceEntries made, for BuildFrom to reuse.
	byFile map[string]*fileServices
	// delta is what BuildFrom changed against its prev, nil for a Build.
	delta *delta
}

type cidrBucket struct {
	bits int
	is4  bool
	nets map[netip.Prefix][]*Service
}

// Build makes a snapshot from documents that passed validation. Kinds other than ServiceEntry are
// kept in Documents for later stages but add no services.
func Build(docs []*config.Document, version uint64, opts ...BuildOption) *Snapshot {
	return BuildFrom(nil, docs, version, opts...)
}

// BuildFrom is Build reusing the services prev (nil for none) made from the same decoded specs,
// as a reload after one file changed has for all the others: services are never written after
// a build, so two snapshots may share them. The indexes are prev's patched at the keys of the
// services added and removed (ChangesFrom lists them), unless that many changed. With
// WithAutoAddresses, which writes the allocated addresses into the services, nothing is reused.
func BuildFrom(prev *Snapshot, docs []*config.Document, version uint64, opts ...BuildOption) *Snapshot {
	var o buildOptions
	for _, opt := range opts {
		opt(&o)
	}
	if o.autoAddresses != nil {
		prev = nil
	}
	s := &Snapshot{Version: version, Documents: docs}
	entries := make([]entryServices, 0, len(docs))
	hosts := 0
	for _, d := range docs {
		if se := d.ServiceEntry(); se != nil {
			entries = append(entries, entryServices{doc: d})
			hosts += len(se.GetHosts())
		}
	}
	// In load order, file by file, so that each file's services are found with one lookup.
	s.byFile = make(map[string]*fileServices, len(prev.filesOr(nil))+1)
	twice := false
	for i := 0; i < len(entries); {
		j := i
		for j < len(entries) && entries[j].doc.File == entries[i].doc.File {
			j++
		}
		twice = s.reuseFile(prev, entries[i:j]) || twice
		i = j
	}
	sortByPrecedence(entries)
	// Sized once: growing slices of 200,000 services was a third of the build.
	s.Services = make([]*Service, 0, hosts)
	d := &delta{}
	for _, e := range entries {
		if e.fresh {
			d.added = append(d.added, e.svcs...)
		}
		s.Services = append(s.Services, e.svcs...)
	}
	if o.autoAddresses != nil {
		assignAutoAddresses(s.Services, o.autoAddresses)
	}
	// A file named twice makes its services twice, which only a full build indexes as it
	// always did.
	if prev != nil && !twice {
		d.removed = prev.removedFrom(s.byFile)
		d.base = weak.Make(prev)
		if s.patchIndexes(prev, d) {
			s.delta = d
			return s
		}
	}
	s.indexAll(hosts)
	if prev != nil && !twice {
		s.delta = d
	}
	return s
}

// sortByPrecedence puts the older entry first, then load order. Load order is already that
// order unless creation times say otherwise, which one pass checks.
func sortByPrecedence(entries []entryServices) {
	older := func(a, b entryServices) int {
		switch {
		case a.doc.OlderThan(b.doc):
			return -1
		case b.doc.OlderThan(a.doc):
			return 1
		}
		return 0
	}
	if !slices.IsSortedFunc(entries, older) {
		slices.SortStableFunc(entries, older)
	}
}

// entryServices is one ServiceEntry document of a build with its services; fresh says they
// were made by this build rather than taken from the previous snapshot.
type entryServices struct {
	doc   *config.Document
	svcs  []*Service
	fresh bool
}

// fileServices are the services of one file's ServiceEntries, in their order, with the specs
// they were made from: a file decoded again has new specs, so a match proves them current.
type fileServices struct {
	specs []*networking.ServiceEntry
	svcs  [][]*Service
}

// filesOr returns s's services by file, or def for a nil s.
func (s *Snapshot) filesOr(def map[string]*fileServices) map[string]*fileServices {
	if s == nil {
		return def
	}
	return s.byFile
}

// reuseFile gives the entries of one file the services prev made from the same specs, or new
// ones, and records them in s.byFile. It reports whether the file was met before in this build.
func (s *Snapshot) reuseFile(prev *Snapshot, entries []entryServices) (twice bool) {
	file := entries[0].doc.File
	var old *fileServices
	if prev != nil {
		old = prev.byFile[file]
	}
	reusable := func(k int) bool {
		return old != nil && k < len(old.specs) && old.specs[k] == entries[k].doc.ServiceEntry() && sameSource(old.svcs[k], entries[k].doc)
	}
	same := old != nil && len(old.specs) == len(entries)
	for k := 0; same && k < len(entries); k++ {
		same = reusable(k)
	}
	fs := old // unchanged: shared, which also tells removedFrom to look no further
	if !same {
		fs = &fileServices{specs: make([]*networking.ServiceEntry, len(entries)), svcs: make([][]*Service, len(entries))}
	}
	for k := range entries {
		e := &entries[k]
		if same || reusable(k) {
			e.svcs = old.svcs[k]
		} else {
			e.svcs, e.fresh = servicesOf(e.doc), true
		}
		if !same {
			fs.specs[k], fs.svcs[k] = e.doc.ServiceEntry(), e.svcs
		}
	}
	if _, seen := s.byFile[file]; seen {
		return true
	}
	s.byFile[file] = fs
	return false
}

// sameSource reports whether svcs were made from a document of d's name and place.
func sameSource(svcs []*Service, d *config.Document) bool {
	if len(svcs) == 0 {
		return false
	}
	src := svcs[0].Source
	return svcs[0].Namespace == d.Namespace && svcs[0].Entry == d.Name && src != nil && src.File == d.File && src.Line == d.Line
}

// removedFrom lists the services of s that next, by file, no longer has.
func (s *Snapshot) removedFrom(next map[string]*fileServices) []*Service {
	var out []*Service
	for file, old := range s.byFile {
		cur := next[file]
		if cur == old {
			continue
		}
		for k, svcs := range old.svcs {
			if len(svcs) == 0 {
				continue
			}
			if cur == nil || k >= len(cur.svcs) || len(cur.svcs[k]) == 0 || &cur.svcs[k][0] != &svcs[0] {
				out = append(out, svcs...)
			}
		}
	}
	return out
}

// indexAll builds every index from s.Services.
func (s *Snapshot) indexAll(hosts int) {
	s.exact.base = make(map[string][]*Service, hosts)
	s.wildcard.base = map[string][]*Service{}
	s.ips.base = map[netip.Addr][]*Service{}
	portOnly, byPort := map[uint32][]*Service{}, map[uint32][]*Service{}
	cidrIndex := map[[2]int]*cidrBucket{}
	for _, svc := range s.Services {
		s.index(svc, cidrIndex, portOnly, byPort)
	}
	s.portOnly, s.byPort = chunkedMap(portOnly), chunkedMap(byPort)
	for _, b := range cidrIndex {
		s.cidrs = append(s.cidrs, *b)
	}
	sort.Slice(s.cidrs, func(i, j int) bool { return s.cidrs[i].bits > s.cidrs[j].bits })
}

func (s *Snapshot) index(svc *Service, cidrIndex map[[2]int]*cidrBucket, portOnly, byPort map[uint32][]*Service) {
	if svc.Wildcard {
		suffix := svc.Host[2:]
		s.wildcard.base[suffix] = append(s.wildcard.base[suffix], svc)
	} else {
		s.exact.base[svc.Host] = append(s.exact.base[svc.Host], svc)
	}
	for _, p := range svc.Ports {
		byPort[p.Number] = append(byPort[p.Number], svc)
		if len(svc.Addresses) == 0 {
			portOnly[p.Number] = append(portOnly[p.Number], svc)
		}
	}
	for _, pfx := range svc.Addresses {
		if pfx.IsSingleIP() {
			s.ips.base[pfx.Addr()] = append(s.ips.base[pfx.Addr()], svc)
			continue
		}
		key := [2]int{pfx.Bits(), 0}
		if pfx.Addr().Is4() {
			key[1] = 1
		}
		b := cidrIndex[key]
		if b == nil {
			b = &cidrBucket{bits: pfx.Bits(), is4: pfx.Addr().Is4(), nets: map[netip.Prefix][]*Service{}}
			cidrIndex[key] = b
		}
		b.nets[pfx] = append(b.nets[pfx], svc)
	}
}

// servicesOf expands one ServiceEntry into a service per host sharing ports, endpoints and addresses.
func servicesOf(d *config.Document) []*Service {
	se := d.ServiceEntry()
	addrs := parseAddresses(se.GetAddresses())
	res := resolutionOf(se.GetResolution())
	all, none, to := exportSet(se.GetExportTo(), d.Namespace)
	shared := sharedEndpoints(se)
	out := make([]*Service, 0, len(se.GetHosts()))
	for _, h := range se.GetHosts() {
		host := NormalizeHost(h)
		svc := &Service{
			Host:            host,
			Wildcard:        strings.HasPrefix(host, "*."),
			Namespace:       d.Namespace,
			Entry:           d.Name,
			Source:          d,
			Addresses:       addrs,
			Resolution:      res,
			MeshInternal:    se.GetLocation() == networking.ServiceEntry_MESH_INTERNAL,
			SubjectAltNames: se.GetSubjectAltNames(),
			exportAll:       all,
			exportNone:      none,
			exportTo:        to,
		}
		svc.Ports = make([]Port, 0, len(se.GetPorts()))
		for i, p := range se.GetPorts() {
			port := Port{
				Number:     p.GetNumber(),
				Name:       p.GetName(),
				Protocol:   p.GetProtocol(),
				Family:     ProtocolFamily(p.GetProtocol()),
				TargetPort: p.GetTargetPort(),
				Cluster:    clusterName(p.GetNumber(), host),
			}
			switch {
			case res == ResolutionNone, res == ResolutionDynamicDNS:
				// The requested destination is dialled (NONE) or the requested name resolved at
				// connection time (DYNAMIC_DNS); declared endpoints are ignored, as Istio does.
			case (res == ResolutionDNS || res == ResolutionDNSRoundRobin) && len(se.GetEndpoints()) == 0:
				// With no endpoints the host itself is the name to resolve.
				port.Endpoints = []Endpoint{{Address: host, Port: defaultPort(p), Weight: 1}}
			default:
				port.Endpoints = shared[i]
			}
			svc.Ports = append(svc.Ports, port)
		}
		out = append(out, svc)
	}
	return out
}

// resolutionOf maps the API's resolution to ours.
func resolutionOf(r networking.ServiceEntry_Resolution) Resolution {
	switch r {
	case networking.ServiceEntry_STATIC:
		return ResolutionStatic
	case networking.ServiceEntry_DNS:
		return ResolutionDNS
	case networking.ServiceEntry_DNS_ROUND_ROBIN:
		return ResolutionDNSRoundRobin
	case networking.ServiceEntry_DYNAMIC_DNS:
		return ResolutionDynamicDNS
	}
	return ResolutionNone
}

// sharedEndpoints instantiates every endpoint for every service port once per entry; all hosts of
// the entry share the slices.
func sharedEndpoints(se *networking.ServiceEntry) [][]Endpoint {
	out := make([][]Endpoint, len(se.GetPorts()))
	for i, p := range se.GetPorts() {
		eps := make([]Endpoint, 0, len(se.GetEndpoints()))
		for _, we := range se.GetEndpoints() {
			ep := Endpoint{
				Address:  we.GetAddress(),
				Weight:   max(we.GetWeight(), 1),
				Locality: we.GetLocality(),
				Network:  we.GetNetwork(),
				Labels:   we.GetLabels(),
			}
			if strings.HasPrefix(ep.Address, "unix://") {
				ep.Unix = true
			} else {
				if ip, err := netip.ParseAddr(ep.Address); err == nil {
					ep.IP = ip.Unmap()
				}
				ep.Port = defaultPort(p)
				if n, ok := we.GetPorts()[p.GetName()]; ok && n != 0 {
					ep.Port = n
				}
			}
			eps = append(eps, ep)
		}
		out[i] = eps
	}
	return out
}

// clusterName is Istio's outbound cluster name for a port of host: outbound|PORT||HOST.
func clusterName(port uint32, host string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "||" + host
}

func defaultPort(p *networking.ServicePort) uint32 {
	if p.GetTargetPort() != 0 {
		return p.GetTargetPort()
	}
	return p.GetNumber()
}

// parseAddresses keeps IPs and CIDRs (a /32 or /128 is an IP); anything else is skipped, as Istio does.
func parseAddresses(in []string) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range in {
		if ip, err := netip.ParseAddr(a); err == nil {
			ip = ip.Unmap()
			out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
			continue
		}
		if p, err := netip.ParsePrefix(a); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// exportSet resolves exportTo: absent or "*" is everyone, "~" nobody, "." the entry's own namespace.
func exportSet(exportTo []string, ns string) (all, none bool, to []string) {
	if len(exportTo) == 0 {
		return true, false, nil
	}
	for _, e := range exportTo {
		switch e {
		case "*":
			return true, false, nil
		case "~":
		case ".":
			to = append(to, ns)
		default:
			to = append(to, e)
		}
	}
	return false, len(to) == 0, to
}

// NormalizeHost lowercases a host and drops a trailing dot, the forms a sidecar treats as equal.
func NormalizeHost(h string) string {
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}
