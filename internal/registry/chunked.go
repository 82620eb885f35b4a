package registry

import (
	"maps"
	"sort"
)

// chunkLen is the length of a chunked list's parts as built: long enough that reading a list
// is a few slices, short enough that a patch copies little.
const chunkLen = 256

// chunked is an index list too long to copy at every reload (the services of a port number,
// 100,000 of them at scale): its services in precedence order, in parts that a patch replaces
// one by one, so a reload that adds or removes a few services copies a few parts and the list
// of parts. Parts are never written after a build.
type chunked struct {
	parts [][]*Service
}

// chunkedOf splits list into parts sharing its array, each capped so that no append can write
// past it.
func chunkedOf(list []*Service) chunked {
	var c chunked
	for i := 0; i < len(list); i += chunkLen {
		j := min(i+chunkLen, len(list))
		c.parts = append(c.parts, list[i:j:j])
	}
	return c
}

// pick is filter.pick over the whole list.
func (c chunked) pick(f *filter) (*Service, *Port) {
	for _, part := range c.parts {
		if svc, p := f.pick(part); svc != nil {
			return svc, p
		}
	}
	return nil, nil
}

// flat returns the services in one slice, for tests and dumps.
func (c chunked) flat() []*Service {
	var out []*Service
	for _, part := range c.parts {
		out = append(out, part...)
	}
	return out
}

// chunkedMap turns built lists into chunked ones.
func chunkedMap[K comparable](m map[K][]*Service) map[K]chunked {
	out := make(map[K]chunked, len(m))
	for k, list := range m {
		out[k] = chunkedOf(list)
	}
	return out
}

// patchChunkedMap is patchMap for chunked lists.
func patchChunkedMap[K comparable](m map[K]chunked, adds map[K][]*Service, gone *patcher) map[K]chunked {
	out := maps.Clone(m)
	if out == nil {
		out = map[K]chunked{}
	}
	for k, add := range adds {
		if c := gone.patchChunked(m[k], add); len(c.parts) > 0 {
			out[k] = c
		} else {
			delete(out, k)
		}
	}
	return out
}

// patchChunked is merge over a chunked list: each service added goes to the part holding the
// place a full merge would give it, each gone one is looked for in the parts its precedence
// spans, and only the parts so touched are merged anew.
func (p *patcher) patchChunked(old chunked, add []*Service) chunked {
	n := len(old.parts)
	if n == 0 {
		return chunkedOf(p.merge(nil, add))
	}
	touched := map[int][]*Service{}
	for _, a := range add {
		// The first part whose last service a wins over holds its place; else the last part.
		k := sort.Search(n, func(i int) bool { return p.prec.less(a, old.parts[i][len(old.parts[i])-1]) })
		k = min(k, n-1)
		touched[k] = append(touched[k], a)
	}
	for r := range p.gone {
		// The parts whose first and last services do not both win over, or lose to, r.
		k := sort.Search(n, func(i int) bool { return !p.was.less(old.parts[i][len(old.parts[i])-1], r) })
		for ; k < n && !p.was.less(r, old.parts[k][0]); k++ {
			if _, ok := touched[k]; !ok {
				touched[k] = nil
			}
		}
	}
	if len(touched) == 0 {
		return old
	}
	out := chunked{parts: make([][]*Service, 0, n+1)}
	for k, part := range old.parts {
		adds, ok := touched[k]
		if !ok {
			out.parts = append(out.parts, part)
			continue
		}
		merged := p.merge(part, adds)
		if len(merged) == len(part) && len(adds) == 0 && &merged[0] == &part[0] {
			out.parts = append(out.parts, part) // nothing of it went
			continue
		}
		if len(merged) > 2*chunkLen {
			out.parts = append(out.parts, chunkedOf(merged).parts...)
		} else if len(merged) > 0 {
			out.parts = append(out.parts, merged[:len(merged):len(merged)])
		}
	}
	return out
}
