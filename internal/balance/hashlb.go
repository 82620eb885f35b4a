package balance

import (
	"cmp"
	"math"
	"math/bits"
	"slices"
)

// FNV-1a's 64-bit constants; a finalizer (mix) spreads its low-entropy output over all 64 bits,
// which the ring's binary search and Maglev's modulo both need.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func fnvByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	return h * fnvPrime
}

// mix is splitmix64's finalizer.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

// HashString hashes a consistent-hash key (a header value, a cookie, an address) the way the
// picker's tables are laid out; the same key gives the same value in every process.
func HashString(s string) uint64 { return mix(fnvString(fnvOffset, s)) }

// hashIndexed hashes "key_n" without building the string, for the n-th ring point of a target.
func hashIndexed(key string, n uint64) uint64 {
	h := fnvByte(fnvString(fnvOffset, key), '_')
	var digits [20]byte
	d := len(digits)
	for {
		d--
		digits[d] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	for _, b := range digits[d:] {
		h = fnvByte(h, b)
	}
	return mix(h)
}

// ringPoint is one of a target's points on the hash ring.
type ringPoint struct {
	hash   uint64
	target int32
}

// buildRing places each member on the ring in proportion to its weight, at least minSize points in
// all (DefaultRingSize when 0). Points per unit of the smallest weight are rounded up to a power of
// two: Envoy sizes them to the member count exactly, so dropping one endpoint of ten re-sizes every
// other endpoint's share of points and moves about twice the keys it must; rounding keeps the
// other endpoints' points in place over most changes, so only the keys of the endpoint that went move.
func buildRing(targets []Target, entries []entry, members []int, minSize uint64) []ringPoint {
	if minSize == 0 {
		minSize = DefaultRingSize
	}
	minSize = min(minSize, MaxRingSize)
	minW := uint64(math.MaxUint64)
	for _, i := range members {
		minW = min(minW, entries[i].weight)
	}
	var units float64
	for _, i := range members {
		units += float64(entries[i].weight) / float64(minW)
	}
	per := uint64(1) << bits.Len64(uint64(math.Ceil(float64(minSize)/units))-1)
	scale := float64(per)
	if scale*units > MaxRingSize {
		scale = MaxRingSize / units
	}
	ring := make([]ringPoint, 0, int(math.Min(scale*units+float64(len(members)), MaxRingSize+float64(len(members)))))
	for _, i := range members {
		n := max(1, uint64(math.Round(scale*float64(entries[i].weight)/float64(minW))))
		key := targets[i].Key
		for j := range n {
			ring = append(ring, ringPoint{hash: hashIndexed(key, j), target: int32(i)})
		}
	}
	slices.SortFunc(ring, func(a, b ringPoint) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(targets[a.target].Key, targets[b.target].Key)
	})
	return ring
}

// pickRing takes the first point at or after key, walking on past targets f refuses, so an ejected
// endpoint's keys go to the next endpoint on the ring and come back when it does.
func pickRing(g *group, f *filter, key uint64) (int, bool) {
	if !anyUsable(g, f) {
		return -1, false
	}
	ring := g.ring
	start, _ := slices.BinarySearchFunc(ring, key, func(p ringPoint, k uint64) int { return cmp.Compare(p.hash, k) })
	for k := range ring {
		if t := int(ring[(start+k)%len(ring)].target); f.ok(t) {
			return t, true
		}
	}
	return -1, false
}

// buildMaglev fills a Maglev table of size entries (DefaultTableSize when 0): each member walks its
// own permutation of the table and claims the next free slot on its turn, and a member takes a turn
// in a round only as often as its weight against the heaviest allows (Envoy's weighted Maglev), so
// slots end up proportional to weight and a member's going disturbs few others' slots.
func buildMaglev(targets []Target, entries []entry, members []int, size uint64) []int32 {
	if size == 0 {
		size = DefaultTableSize
	}
	// A prime size makes every skip walk the whole table, which the fill loop relies on to end.
	size = nextPrime(min(size, MaxTableSize))
	type builder struct {
		pos, skip      uint64
		weight, target float64
	}
	bs := make([]builder, len(members))
	var maxW float64
	for j, i := range members {
		key := targets[i].Key
		bs[j] = builder{
			pos:    HashString(key) % size,
			skip:   mix(fnvString(fnvOffset^0x9e3779b97f4a7c15, key))%(size-1) + 1,
			weight: float64(entries[i].weight),
		}
		maxW = max(maxW, bs[j].weight)
	}
	table := make([]int32, size)
	for k := range table {
		table[k] = -1
	}
	filled := uint64(0)
	for round := 1.0; filled < size; round++ {
		for j := range bs {
			b := &bs[j]
			if filled == size {
				break
			}
			if round*b.weight < b.target {
				continue
			}
			b.target += maxW
			for table[b.pos] >= 0 {
				b.pos = (b.pos + b.skip) % size
			}
			table[b.pos] = int32(members[j])
			b.pos = (b.pos + b.skip) % size
			filled++
		}
	}
	return table
}

// pickMaglev looks key up in the table; when f refuses that slot's target it tries the following
// slots, whose owners are spread over the members, so an ejected endpoint's keys scatter.
func pickMaglev(g *group, f *filter, key uint64) (int, bool) {
	if !anyUsable(g, f) {
		return -1, false
	}
	t := g.table
	n := uint64(len(t))
	start := key % n
	for k := range n {
		if i := int(t[(start+k)%n]); f.ok(i) {
			return i, true
		}
	}
	return -1, false
}

// anyUsable reports whether f allows a member of g, so a hash walk never scans a table for nothing.
func anyUsable(g *group, f *filter) bool {
	if f.exclude == nil && !f.health {
		return true
	}
	for _, i := range g.members {
		if f.ok(i) {
			return true
		}
	}
	return false
}

// nextPrime returns the smallest prime >= n (n >= 2), by trial division: tables are at most a few
// million entries and built once per snapshot.
func nextPrime(n uint64) uint64 {
	for n = max(n, 2); ; n++ {
		prime := true
		for d := uint64(2); d*d <= n; d++ {
			if n%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			return n
		}
	}
}
