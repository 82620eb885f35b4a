package registry

import (
	"net/netip"
	"runtime"
	"sort"
	"sync"

	"github.com/meshentry/meshentry/internal/config"
)

// fileRun is one file's documents in a build, in load order, with what makeFile made of them.
type fileRun struct {
	docs  []*config.Document
	fs    *fileServices
	added []*Service
}

// minFilesPerWorker keeps a build of few files, or a reload's, on one goroutine: below it the
// handoff costs more than the services made.
const minFilesPerWorker = 16

// makeFiles splits docs into runs of one file and makes each run's services, on every core (or
// maxWorkers, when not 0) when there are many: at 100,000 entries making the services was half
// the build, and each file's depend only on its documents and prev's services of it, which are
// only read.
func makeFiles(prev *Snapshot, docs []*config.Document, maxWorkers int) []fileRun {
	var runs []fileRun
	for i := 0; i < len(docs); {
		j := i
		for j < len(docs) && docs[j].File == docs[i].File {
			j++
		}
		runs = append(runs, fileRun{docs: docs[i:j]})
		i = j
	}
	if maxWorkers <= 0 {
		maxWorkers = runtime.GOMAXPROCS(0)
	}
	workers := min(maxWorkers, max(1, len(runs)/minFilesPerWorker))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := w; k < len(runs); k += workers {
				r := &runs[k]
				var old *fileServices
				if prev != nil {
					old = prev.byFile[r.docs[0].File]
				}
				r.fs, r.added = makeFile(old, r.docs, prev != nil)
			}
		})
	}
	wg.Wait()
	return runs
}

// indexAll builds every index from s.Services: the host indexes on one goroutine, the address
// and port ones on another, as the two share nothing.
func (s *Snapshot) indexAll(hosts int) {
	var wg sync.WaitGroup
	wg.Go(func() { s.indexHosts(hosts) })
	s.indexAddresses()
	wg.Wait()
}

// indexHosts builds the exact and wildcard host indexes. A host's first service is a slot of
// one slab, capped at one so that a second copies it out, rather than a list of its own: most
// hosts have one service.
func (s *Snapshot) indexHosts(hosts int) {
	s.exact.base = make(map[string][]*Service, hosts)
	s.wildcard.base = map[string][]*Service{}
	slab := make([]*Service, len(s.Services))
	for k, svc := range s.Services {
		m, key := s.exact.base, svc.Host
		if svc.Wildcard {
			m, key = s.wildcard.base, svc.Host[2:]
		}
		if list := m[key]; len(list) > 0 {
			m[key] = append(list, svc)
			continue
		}
		slab[k] = svc
		m[key] = slab[k : k+1 : k+1]
	}
}

// indexAddresses builds the port, IP and CIDR indexes. The lists of a port number, long at
// scale, are sized by a count first rather than grown; an IP's first service is a slot of one
// slab, as a host's is.
func (s *Snapshot) indexAddresses() {
	s.ips.base = map[netip.Addr][]*Service{}
	portOnly, byPort := portLists(s.Services)
	cidrIndex := map[[2]int]*cidrBucket{}
	var slab []*Service
	for _, svc := range s.Services {
		for _, p := range svc.Ports {
			byPort[p.Number] = append(byPort[p.Number], svc)
			if len(svc.Addresses) == 0 {
				portOnly[p.Number] = append(portOnly[p.Number], svc)
			}
		}
		for _, pfx := range svc.Addresses {
			if pfx.IsSingleIP() {
				if list := s.ips.base[pfx.Addr()]; len(list) > 0 {
					s.ips.base[pfx.Addr()] = append(list, svc)
					continue
				}
				if len(slab) == cap(slab) {
					slab = make([]*Service, 0, max(1024, len(s.Services)/8))
				}
				slab = append(slab, svc)
				s.ips.base[pfx.Addr()] = slab[len(slab)-1 : len(slab) : len(slab)]
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
	s.portOnly, s.byPort = chunkedMap(portOnly), chunkedMap(byPort)
	for _, b := range cidrIndex {
		s.cidrs = append(s.cidrs, *b)
	}
	sort.Slice(s.cidrs, func(i, j int) bool { return s.cidrs[i].bits > s.cidrs[j].bits })
}

// portLists returns the empty lists of the port indexes, each with room for its services: the
// services of each port number, and of each port number without addresses.
func portLists(svcs []*Service) (portOnly, byPort map[uint32][]*Service) {
	only, all := map[uint32]int{}, map[uint32]int{}
	for _, svc := range svcs {
		for _, p := range svc.Ports {
			all[p.Number]++
			if len(svc.Addresses) == 0 {
				only[p.Number]++
			}
		}
	}
	portOnly, byPort = make(map[uint32][]*Service, len(only)), make(map[uint32][]*Service, len(all))
	for n, c := range only {
		portOnly[n] = make([]*Service, 0, c)
	}
	for n, c := range all {
		byPort[n] = make([]*Service, 0, c)
	}
	return portOnly, byPort
}
