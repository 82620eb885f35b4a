package registry

import (
	"net/netip"
	"slices"
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
	d := &delta{}
	// In load order, file by file: an unchanged file's services are found with one lookup and
	// taken whole, and no list of every entry is made unless creation times reorder them.
	s.byFile = make(map[string]*fileServices, len(prev.filesOr(nil))+1)
	var files []*fileServices
	twice, sorted := false, true
	var last *config.Document
	hosts := 0
	for _, r := range makeFiles(prev, docs, o.workers) {
		d.added = append(d.added, r.added...)
		fs := r.fs
		if _, seen := s.byFile[r.docs[0].File]; seen {
			twice = true
		} else if fs != nil {
			s.byFile[r.docs[0].File] = fs
		}
		if fs != nil {
			files = append(files, fs)
			hosts += fs.n
			for _, e := range fs.docs {
				sorted = sorted && (last == nil || !e.OlderThan(last))
				last = e
			}
		}
	}
	// Sized once: growing slices of 200,000 services was a third of the build.
	s.Services = make([]*Service, 0, hosts)
	if sorted {
		for _, fs := range files {
			for _, svcs := range fs.svcs {
				s.Services = append(s.Services, svcs...)
			}
		}
	} else {
		s.Services = byPrecedence(files, s.Services)
		// The services added, in load order, are a part of the entries in it: the same stable
		// sort puts them in precedence order.
		slices.SortStableFunc(d.added, func(a, b *Service) int { return olderFirst(a.Source, b.Source) })
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

// olderFirst orders documents as Build orders their services: the older entry first, then
// load order.
func olderFirst(a, b *config.Document) int {
	switch {
	case a.OlderThan(b):
		return -1
	case b.OlderThan(a):
		return 1
	}
	return 0
}

// byPrecedence appends the services of files to out with the older entry first, then load
// order, for a config whose creation times reorder the entries.
func byPrecedence(files []*fileServices, out []*Service) []*Service {
	var entries []entryServices
	for _, fs := range files {
		for k, svcs := range fs.svcs {
			entries = append(entries, entryServices{doc: fs.docs[k], svcs: svcs})
		}
	}
	slices.SortStableFunc(entries, func(a, b entryServices) int { return olderFirst(a.doc, b.doc) })
	for _, e := range entries {
		out = append(out, e.svcs...)
	}
	return out
}

// entryServices is one ServiceEntry document of a build with its services.
type entryServices struct {
	doc  *config.Document
	svcs []*Service
}

// fileServices are the services of one file's ServiceEntries, in their order, with the
// documents and specs they were made from: a file decoded again has new specs, so a match
// proves them current, and a file unchanged has the very same documents. n counts the services.
type fileServices struct {
	docs  []*config.Document
	specs []*networking.ServiceEntry
	svcs  [][]*Service
	n     int
}

// filesOr returns s's services by file, or def for a nil s.
func (s *Snapshot) filesOr(def map[string]*fileServices) map[string]*fileServices {
	if s == nil {
		return def
	}
	return s.byFile
}

// makeFile gives the ServiceEntries among docs, one file's, the services old (prev's for the
// file, or nil) made from the same specs, or new ones, which it also returns as added when
// there is a prev; fs is nil for a file of no ServiceEntry. It reads only docs and old, so
// files are made in parallel.
func makeFile(old *fileServices, docs []*config.Document, hasPrev bool) (fs *fileServices, added []*Service) {
	if old.holds(docs) {
		return old, nil // unchanged: shared, which also tells removedFrom to look no further
	}
	// Sized for a file of ServiceEntries alone, as most are.
	fs = &fileServices{docs: make([]*config.Document, 0, len(docs)), specs: make([]*networking.ServiceEntry, 0, len(docs)),
		svcs: make([][]*Service, 0, len(docs))}
	for _, doc := range docs {
		se := doc.ServiceEntry()
		if se == nil {
			continue
		}
		k := len(fs.docs)
		var svcs []*Service
		if old != nil && k < len(old.specs) && old.specs[k] == se && sameSource(old.svcs[k], doc) {
			svcs = old.svcs[k]
		} else {
			svcs = servicesOf(doc)
			if hasPrev {
				// Without prev there is no delta to tell (BuildFrom sets none), and a list of
				// every service would be made for nothing.
				added = append(added, svcs...)
			}
		}
		fs.docs, fs.specs, fs.svcs = append(fs.docs, doc), append(fs.specs, se), append(fs.svcs, svcs)
		fs.n += len(svcs)
	}
	if len(fs.docs) == 0 {
		return nil, added
	}
	return fs, added
}

// holds reports whether the ServiceEntries among docs are exactly fs's documents.
func (fs *fileServices) holds(docs []*config.Document) bool {
	if fs == nil {
		return false
	}
	k := 0
	for _, doc := range docs {
		if doc.ServiceEntry() == nil {
			continue
		}
		if k >= len(fs.docs) || fs.docs[k] != doc {
			return false
		}
		k++
	}
	return k == len(fs.docs)
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

// servicesOf expands one ServiceEntry into a service per host sharing ports, endpoints and addresses.
func servicesOf(d *config.Document) []*Service {
	se := d.ServiceEntry()
	addrs := parseAddresses(se.GetAddresses())
	res := resolutionOf(se.GetResolution())
	all, none, to := exportSet(se.GetExportTo(), d.Namespace)
	shared := sharedEndpoints(se)
	// One allocation each for the entry's services, their ports, cluster names and host
	// endpoints, rather than one per service, port and name: at 100,000 entries those were
	// most of the build. The entry's services come and go together, so nothing outlives
	// another's slab.
	hosts, ports := se.GetHosts(), se.GetPorts()
	out := make([]*Service, 0, len(hosts))
	svcSlab := make([]Service, len(hosts))
	portSlab := make([]Port, 0, len(hosts)*len(ports))
	names := clusterNames(hosts, ports)
	var hostEps []Endpoint
	if (res == ResolutionDNS || res == ResolutionDNSRoundRobin) && len(se.GetEndpoints()) == 0 {
		hostEps = make([]Endpoint, 0, len(hosts)*len(ports))
	}
	for k, h := range hosts {
		host := NormalizeHost(h)
		svc := &svcSlab[k]
		*svc = Service{
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
		svc.Ports = portSlab[len(portSlab) : len(portSlab) : len(portSlab)+len(ports)]
		for i, p := range ports {
			port := Port{
				Number:     p.GetNumber(),
				Name:       p.GetName(),
				Protocol:   p.GetProtocol(),
				Family:     ProtocolFamily(p.GetProtocol()),
				TargetPort: p.GetTargetPort(),
				Cluster:    names.next(p.GetNumber(), host),
			}
			switch {
			case res == ResolutionNone, res == ResolutionDynamicDNS:
				// The requested destination is dialled (NONE) or the requested name resolved at
				// connection time (DYNAMIC_DNS); declared endpoints are ignored, as Istio does.
			case (res == ResolutionDNS || res == ResolutionDNSRoundRobin) && len(se.GetEndpoints()) == 0:
				// With no endpoints the host itself is the name to resolve.
				hostEps = append(hostEps, Endpoint{Address: host, Port: defaultPort(p), Weight: 1})
				port.Endpoints = hostEps[len(hostEps)-1 : len(hostEps) : len(hostEps)]
			default:
				port.Endpoints = shared[i]
			}
			svc.Ports = append(svc.Ports, port)
		}
		portSlab = portSlab[:len(portSlab)+len(ports)]
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

// nameSlab hands out the cluster names of one entry as pieces of one string: a Builder never
// writes over what it has written, so each piece stays as it was handed out.
type nameSlab struct {
	b strings.Builder
}

// clusterNames makes room for the cluster names of every port of every host.
func clusterNames(hosts []string, ports []*networking.ServicePort) *nameSlab {
	n := 0
	for _, h := range hosts {
		n += len(ports) * (len("outbound|65535||") + len(h))
	}
	s := &nameSlab{}
	s.b.Grow(n)
	return s
}

// next returns clusterName(port, host).
func (s *nameSlab) next(port uint32, host string) string {
	from := s.b.Len()
	var digits [10]byte
	s.b.WriteString("outbound|")
	s.b.Write(strconv.AppendUint(digits[:0], uint64(port), 10))
	s.b.WriteString("||")
	s.b.WriteString(host)
	return s.b.String()[from:]
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
