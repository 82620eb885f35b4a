package httpfwd

import "hash/maphash"

// optIndex is a hash set of the field names listed in a Connection field. Marking the fields
// it names then costs one lookup per field, where comparing each field with each option made
// a 64 KiB head of many fields and a long Connection list cost ~160 ms of CPU. It is reused
// across the heads of a connection, so it allocates only when a head lists more options than
// any before it.
type optIndex struct {
	seed   maphash.Seed
	seeded bool
	slots  []int32  // 1 + index into hashes and names, 0 when empty; len is a power of two
	hashes []uint64 // hash of each distinct option
	names  []span   // each distinct option, in the head buffer
	fold   []byte   // scratch for lower-casing a name before hashing
}

// hashName hashes name folded to lower case, so that the set ignores case as field names do.
func (x *optIndex) hashName(name []byte) uint64 {
	f := x.fold[:0]
	for _, c := range name {
		f = append(f, lower(c))
	}
	x.fold = f
	return maphash.Bytes(x.seed, f)
}

// build fills the set with the options of h; duplicates are stored once, so a list repeating
// one name cannot make probing slow.
func (x *optIndex) build(h *headerBlock) {
	if !x.seeded {
		x.seed, x.seeded = maphash.MakeSeed(), true
	}
	size := 8
	for size < 2*len(h.connOpts) {
		size *= 2
	}
	if cap(x.slots) < size {
		x.slots = make([]int32, size)
	} else {
		x.slots = x.slots[:size]
		clear(x.slots)
	}
	x.hashes, x.names = x.hashes[:0], x.names[:0]
	for _, s := range h.connOpts {
		name := h.raw[s.start:s.end]
		hv := x.hashName(name)
		i, found := x.find(h.raw, name, hv)
		if found {
			continue
		}
		x.hashes = append(x.hashes, hv)
		x.names = append(x.names, s)
		x.slots[i] = int32(len(x.hashes))
	}
}

// find returns the slot holding name, or the empty slot where it belongs.
func (x *optIndex) find(raw, name []byte, hv uint64) (int, bool) {
	mask := len(x.slots) - 1
	for i := int(hv) & mask; ; i = (i + 1) & mask {
		e := x.slots[i]
		if e == 0 {
			return i, false
		}
		if n := x.names[e-1]; x.hashes[e-1] == hv && equalFoldBytes(raw[n.start:n.end], name) {
			return i, true
		}
	}
}

// has reports whether name is in the set.
func (x *optIndex) has(raw, name []byte) bool {
	_, found := x.find(raw, name, x.hashName(name))
	return found
}

// markListed flags the fields that the Connection field names as hop-by-hop, in one pass over
// the fields. Only fields the engine does not frame or route by can be so named: dropping
// Host, Content-Length or Transfer-Encoding would make the next hop read the message
// otherwise. Nor can x-request-id, which is ours to send: the upstream always gets one.
func (h *headerBlock) markListed() {
	x := &h.opts
	x.build(h)
	for i := range h.fields {
		f := &h.fields[i]
		switch f.kind {
		case kindOther, kindExpect:
			f.listed = x.has(h.raw, h.raw[f.name.start:f.name.end])
		}
	}
}
