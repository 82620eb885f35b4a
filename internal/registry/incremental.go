package registry

import (
	"maps"
	"net/netip"
	"slices"
	"sort"
	"weak"

	"github.com/meshentry/meshentry/internal/config"
)

// delta is what BuildFrom changed against the snapshot it started from. The base is held weakly
// so that a chain of reloads does not keep every earlier snapshot alive.
type delta struct {
	base           weak.Pointer[Snapshot]
	added, removed []*Service
}

// ChangesFrom returns the services s has that prev had not, and those prev had that s has not,
// when s was built from prev by BuildFrom; ok is false otherwise, and the caller compares the two
// whole. A reload after one file changed gives a few of each, whatever the size of the config.
func (s *Snapshot) ChangesFrom(prev *Snapshot) (added, removed []*Service, ok bool) {
	if s == nil || prev == nil || s.delta == nil || s.delta.base.Value() != prev {
		return nil, nil, false
	}
	return s.delta.added, s.delta.removed, true
}

// maxPatchShare bounds an incremental index build: past a quarter of the services changed,
// patching the indexes costs more than building them anew.
const maxPatchShare = 4

// precedence orders services as Build does, without the documents' load order numbers, which
// shift for every document after a file that gained or lost one: creation time, then the
// file's place in the load, then the line. Services of one entry compare equal.
type precedence struct {
	file map[string]int
}

// newPrecedence numbers the files of docs in load order; ok is false when a file's documents
// are not together (a file given twice), where only the load order numbers decide.
func newPrecedence(docs []*config.Document) (precedence, bool) {
	p := precedence{file: map[string]int{}}
	last := ""
	for i, d := range docs {
		if i > 0 && d.File == last {
			continue
		}
		if _, seen := p.file[d.File]; seen {
			return p, false
		}
		p.file[d.File] = len(p.file)
		last = d.File
	}
	return p, true
}

// less reports whether a wins over b; it is false for two services of one entry.
func (p precedence) less(a, b *Service) bool {
	da, db := a.Source, b.Source
	if !da.Created.Equal(db.Created) {
		return da.OlderThan(db)
	}
	if fa, fb := p.file[da.File], p.file[db.File]; fa != fb {
		return fa < fb
	}
	return da.Line < db.Line
}

// patchIndexes makes s's indexes from prev's by removing the services of d.removed and adding
// those of d.added, touching only the keys they have. It reports false, leaving s as it was,
// when the change is too large for that to pay or the documents' order cannot be told from
// their files and lines.
func (s *Snapshot) patchIndexes(prev *Snapshot, d *delta) bool {
	if prev == nil || prev.exact.base == nil || (len(d.added)+len(d.removed))*maxPatchShare > len(s.Services)+1 {
		return false
	}
	prec, ok := newPrecedence(s.Documents)
	if !ok {
		return false
	}
	was, ok := newPrecedence(prev.Documents)
	if !ok {
		return false
	}
	gone := &patcher{gone: make(map[*Service]struct{}, len(d.removed)), prec: prec, was: was}
	for _, svc := range d.removed {
		gone.gone[svc] = struct{}{}
	}
	// The services to add per key, in precedence order since d.added is.
	exact, wild := map[string][]*Service{}, map[string][]*Service{}
	ips, port, portOnly := map[netip.Addr][]*Service{}, map[uint32][]*Service{}, map[uint32][]*Service{}
	nets := map[netip.Prefix][]*Service{}
	touch := func(svc *Service, add bool) {
		put := func(m map[string][]*Service, k string) {
			m[k] = appendIf(m[k], svc, add)
		}
		if svc.Wildcard {
			put(wild, svc.Host[2:])
		} else {
			put(exact, svc.Host)
		}
		for _, p := range svc.Ports {
			port[p.Number] = appendIf(port[p.Number], svc, add)
			if len(svc.Addresses) == 0 {
				portOnly[p.Number] = appendIf(portOnly[p.Number], svc, add)
			}
		}
		for _, pfx := range svc.Addresses {
			if pfx.IsSingleIP() {
				ips[pfx.Addr()] = appendIf(ips[pfx.Addr()], svc, add)
			} else {
				nets[pfx] = appendIf(nets[pfx], svc, add)
			}
		}
	}
	for _, svc := range d.removed {
		touch(svc, false)
	}
	for _, svc := range d.added {
		touch(svc, true)
	}
	s.exact = prev.exact.patch(exact, gone)
	s.wildcard = prev.wildcard.patch(wild, gone)
	s.ips = prev.ips.patch(ips, gone)
	s.byPort = patchChunkedMap(prev.byPort, port, gone)
	s.portOnly = patchChunkedMap(prev.portOnly, portOnly, gone)
	s.cidrs = patchCIDRs(prev.cidrs, nets, gone)
	return true
}

// appendIf appends svc when add is set, and otherwise only makes sure the key is there.
func appendIf(list []*Service, svc *Service, add bool) []*Service {
	if add {
		return append(list, svc)
	}
	if list == nil {
		return []*Service{}
	}
	return list
}

// patchMap copies m with the keys of adds rebuilt: their old services less the gone ones,
// merged with the added ones in precedence order; a key left with none is dropped.
func patchMap[K comparable](m map[K][]*Service, adds map[K][]*Service, gone *patcher) map[K][]*Service {
	out := maps.Clone(m)
	if out == nil {
		out = map[K][]*Service{}
	}
	for k, add := range adds {
		if list := gone.merge(m[k], add); len(list) > 0 {
			out[k] = list
		} else {
			delete(out, k)
		}
	}
	return out
}

// patcher is what patching the indexes of one build needs: the services gone, and the
// precedence of this build and of the one patched.
type patcher struct {
	gone      map[*Service]struct{}
	prec, was precedence
}

// merge keeps old less the gone services in its order and puts each of add after the services
// that win over it, as a full build's stable sort would.
func (p *patcher) merge(old []*Service, add []*Service) []*Service {
	cut := p.cuts(old)
	if len(cut) == 0 && len(add) == 0 {
		return old // untouched: shared, as services and lists are never written after a build
	}
	kept := old
	if len(cut) > 0 {
		kept = make([]*Service, 0, len(old)-len(cut)+len(add))
		from := 0
		for _, c := range cut {
			kept = append(kept, old[from:c]...)
			from = c + 1
		}
		kept = append(kept, old[from:]...)
	}
	if len(add) == 0 {
		return kept
	}
	out := make([]*Service, 0, len(kept)+len(add))
	from := 0
	for _, a := range add {
		at := from + sort.Search(len(kept)-from, func(i int) bool { return p.prec.less(a, kept[from+i]) })
		out = append(append(out, kept[from:at]...), a)
		from = at
	}
	return append(out, kept[from:]...)
}

// cuts returns the positions in old of the gone services, in order. A long list (the services
// of a port number, say) is searched by the precedence it was built in, one binary search per
// service gone, rather than read whole.
func (p *patcher) cuts(old []*Service) []int {
	var cut []int
	if len(old) < 64 || len(p.gone) > len(old)/16 {
		for i, svc := range old {
			if _, g := p.gone[svc]; g {
				cut = append(cut, i)
			}
		}
		return cut
	}
	for r := range p.gone {
		i := sort.Search(len(old), func(i int) bool { return !p.was.less(old[i], r) })
		// Services of one entry compare equal: the one sought is among them, if here at all.
		for ; i < len(old) && !p.was.less(r, old[i]); i++ {
			if old[i] == r {
				cut = append(cut, i)
				break
			}
		}
	}
	slices.Sort(cut)
	return cut
}

// patchCIDRs is patchMap for the CIDR buckets, which are kept longest prefix first.
func patchCIDRs(prev []cidrBucket, adds map[netip.Prefix][]*Service, gone *patcher) []cidrBucket {
	if len(adds) == 0 {
		return prev
	}
	type key struct {
		bits int
		is4  bool
	}
	byKey := map[key]map[netip.Prefix][]*Service{}
	for pfx := range adds {
		byKey[key{pfx.Bits(), pfx.Addr().Is4()}] = nil
	}
	out := make([]cidrBucket, 0, len(prev)+len(byKey))
	for _, b := range prev {
		k := key{b.bits, b.is4}
		if _, touched := byKey[k]; !touched {
			out = append(out, b)
			continue
		}
		byKey[k] = b.nets
	}
	for k, nets := range byKey {
		mine := map[netip.Prefix][]*Service{}
		for pfx, add := range adds {
			if pfx.Bits() == k.bits && pfx.Addr().Is4() == k.is4 {
				mine[pfx] = add
			}
		}
		if patched := patchMap(nets, mine, gone); len(patched) > 0 {
			out = append(out, cidrBucket{bits: k.bits, is4: k.is4, nets: patched})
		}
	}
	slices.SortStableFunc(out, func(a, b cidrBucket) int { return b.bits - a.bits })
	return out
}

// layered is an index too large to copy at every reload: a base map and an overlay of the keys
// patched since (a nil list deletes the base's key). The overlay is folded into a new base once
// it outgrows maxOverlay, so its copy stays small and the fold's cost is shared by many reloads.
type layered[K comparable] struct {
	base, over map[K][]*Service
}

// get returns the services of k.
func (l *layered[K]) get(k K) []*Service {
	if len(l.over) > 0 {
		if list, ok := l.over[k]; ok {
			return list
		}
	}
	return l.base[k]
}

// all yields every key with services.
func (l *layered[K]) all(yield func(K, []*Service) bool) {
	for k, list := range l.over {
		if len(list) > 0 && !yield(k, list) {
			return
		}
	}
	for k, list := range l.base {
		if _, patched := l.over[k]; !patched && !yield(k, list) {
			return
		}
	}
}

// maxOverlay is when a layered index is folded: past an eighth of the base, or 1,024 keys for a
// small one, the lookups through it and its copies cost more than a fold.
func maxOverlay(base int) int { return 1024 + base/8 }

// patch returns l with the keys of adds rebuilt, as patchMap does, leaving l as it was.
func (l *layered[K]) patch(adds map[K][]*Service, gone *patcher) layered[K] {
	over := make(map[K][]*Service, len(l.over)+len(adds))
	maps.Copy(over, l.over)
	for k, add := range adds {
		list := gone.merge(l.get(k), add)
		if len(list) == 0 {
			list = nil
		}
		over[k] = list
	}
	if len(over) <= maxOverlay(len(l.base)) {
		return layered[K]{base: l.base, over: over}
	}
	base := make(map[K][]*Service, len(l.base)+len(over))
	for k, list := range l.all {
		base[k] = list
	}
	for k, list := range over {
		if list == nil {
			delete(base, k)
		} else {
			base[k] = list
		}
	}
	return layered[K]{base: base}
}
