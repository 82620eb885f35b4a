// Package vip allocates virtual IPs to ServiceEntry hosts that declare no addresses, as Istio's
// DNS proxy auto-allocation does, so that each such host has a destination address of its own.
//
// A host's first slot is a hash of its name, probed linearly past slots other hosts hold. Hash
// and probe alone are stable only while collisions resolve the same way, which depends on which
// hosts were there first; so every allocation once made is kept first (in memory across reloads,
// and in an optional state file across restarts) and only new hosts probe.
package vip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sync"
)

// Istio's auto-allocation ranges.
var (
	// DefaultV4 is the IPv4 range Istio allocates from (240.240.0.0/16, reserved class E space).
	DefaultV4 = netip.MustParsePrefix("240.240.0.0/16")
	// DefaultV6 is the IPv6 range Istio allocates from (2001:2::/48, the benchmarking range).
	DefaultV6 = netip.MustParsePrefix("2001:2::/48")
)

// DefaultMaxStale bounds the allocations kept for hosts that left the config, so a host that
// comes back gets its old address, without the table growing with every host ever seen.
const DefaultMaxStale = 65536

// Addrs is the pair of addresses one host holds; either may be invalid when its range is full.
type Addrs struct {
	V4 netip.Addr `json:"v4,omitzero"`
	V6 netip.Addr `json:"v6,omitzero"`
}

// Config says where addresses come from.
type Config struct {
	// V4 and V6 are the ranges; zero values mean DefaultV4 and DefaultV6.
	V4, V6 netip.Prefix
	// MaxStale bounds allocations of hosts no longer in the config (0: DefaultMaxStale).
	MaxStale int
}

// pool is one address range: slot i is the (i+1)-th address after the prefix's base, so the
// network address is never handed out; an IPv4 range also keeps its last (broadcast) address.
type pool struct {
	prefix netip.Prefix
	// base is the low 64 bits of the network address; slots never carry past them, since a
	// pool with more than 64 host bits is capped at 2^63 slots.
	base uint64
	size uint64
	// Holders by slot: a slice for ranges up to denseMax slots, which probing walks far
	// faster than a map, else a map (an IPv6 range has more slots than any config hosts).
	dense  []string
	sparse map[uint64]string
	used   uint64
}

// denseMax is the largest range held in a slice (16 MiB of string headers, a /12).
const denseMax = 1 << 20

func (p *pool) holder(s uint64) string {
	if p.dense != nil {
		return p.dense[s]
	}
	return p.sparse[s]
}

func (p *pool) set(s uint64, host string) {
	if p.holder(s) == "" {
		p.used++
	}
	if p.dense != nil {
		p.dense[s] = host
	} else {
		p.sparse[s] = host
	}
}

func (p *pool) free(s uint64) {
	if p.holder(s) == "" {
		return
	}
	p.used--
	if p.dense != nil {
		p.dense[s] = ""
	} else {
		delete(p.sparse, s)
	}
}

// holders calls fn for every held slot's host.
func (p *pool) holders(fn func(string)) {
	if p.dense != nil {
		for _, h := range p.dense {
			if h != "" {
				fn(h)
			}
		}
		return
	}
	for _, h := range p.sparse {
		fn(h)
	}
}

func newPool(p netip.Prefix) (*pool, error) {
	p = p.Masked()
	hostBits := p.Addr().BitLen() - p.Bits()
	if hostBits < 2 {
		return nil, fmt.Errorf("vip range %s: too small to allocate from", p)
	}
	var size uint64
	switch {
	case hostBits >= 64:
		size = 1 << 63 // more than any config can hold; keeps the arithmetic in uint64
	case p.Addr().Is4():
		size = 1<<hostBits - 2
	default:
		size = 1<<hostBits - 1
	}
	pl := &pool{prefix: p, base: low64(p.Addr()), size: size}
	if size <= denseMax {
		pl.dense = make([]string, size)
	} else {
		pl.sparse = map[uint64]string{}
	}
	return pl, nil
}

func low64(a netip.Addr) uint64 {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[8:])
}

func (p *pool) addr(slot uint64) netip.Addr {
	n := p.base + slot + 1
	if p.prefix.Addr().Is4() {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(n))
		return netip.AddrFrom4(b)
	}
	b := p.prefix.Addr().As16()
	binary.BigEndian.PutUint64(b[8:], n)
	return netip.AddrFrom16(b)
}

// slotOf returns a's slot, or false when a is outside the pool's range.
func (p *pool) slotOf(a netip.Addr) (uint64, bool) {
	if !a.IsValid() || !p.prefix.Contains(a) {
		return 0, false
	}
	d := low64(a) - p.base
	if d == 0 || d-1 >= p.size || p.addr(d-1) != a {
		return 0, false
	}
	return d - 1, true
}

// take finds host a free slot outside avoid, starting from its hash and probing forward; false
// when none is left. A run of slots inside one avoided prefix is stepped over at once, so a
// large declared range costs one step, not one per address.
func (p *pool) take(host string, h uint64, avoid []netip.Prefix) (uint64, bool) {
	if p.used >= p.size {
		return 0, false
	}
	s := h % p.size
	for scanned := uint64(0); scanned < p.size; {
		if end, ok := p.avoidedUntil(s, avoid); ok {
			scanned += end - s + 1
			s = (end + 1) % p.size
			continue
		}
		if p.holder(s) == "" {
			p.set(s, host)
			return s, true
		}
		scanned++
		s = (s + 1) % p.size
	}
	return 0, false
}

// avoidedUntil reports whether slot s's address lies in one of avoid, and then the last slot
// of the run that prefix covers.
func (p *pool) avoidedUntil(s uint64, avoid []netip.Prefix) (uint64, bool) {
	a := p.addr(s)
	for _, q := range avoid {
		if !q.Contains(a) {
			continue
		}
		hostBits := q.Addr().BitLen() - q.Bits()
		if hostBits >= 64 { // the slots all share their upper 64 bits, so q holds every later one
			return p.size - 1, true
		}
		last := low64(q.Masked().Addr()) | (1<<hostBits - 1)
		return min(last-p.base-1, p.size-1), true
	}
	return 0, false
}

// overlapping keeps the prefixes of avoid that share addresses with p's range.
func (p *pool) overlapping(avoid []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, q := range avoid {
		if q.IsValid() && q.Addr().Is4() == p.prefix.Addr().Is4() && q.Overlaps(p.prefix) {
			out = append(out, q.Masked())
		}
	}
	return out
}

// Allocator holds every allocation made so far; it lives outside any snapshot, and a snapshot's
// build asks it for the addresses of that snapshot's hosts.
type Allocator struct {
	mu       sync.Mutex
	v4, v6   *pool
	entries  map[string]*entry
	gen      uint64
	maxStale int
	// noStale is the generation in which reclaim found no stale holder: none appears until
	// the next Allocate, so a full range costs one scan per Allocate, not one per host.
	noStale uint64
	// changed is set when an allocation is made or dropped, and cleared by Save.
	changed bool
	// exhausted counts hosts that asked for an address of a family whose range was full.
	exhausted [2]uint64
	// avoid4 and avoid6 are the declared prefixes inside the ranges, as of the last Allocate.
	avoid4, avoid6 []netip.Prefix
}

type entry struct {
	addrs Addrs
	slot4 uint64
	slot6 uint64
	// seen is the generation of the last Allocate that named the host.
	seen uint64
}

// New returns an empty Allocator.
func New(cfg Config) (*Allocator, error) {
	if !cfg.V4.IsValid() {
		cfg.V4 = DefaultV4
	}
	if !cfg.V6.IsValid() {
		cfg.V6 = DefaultV6
	}
	if !cfg.V4.Addr().Is4() || !cfg.V6.Addr().Is6() || cfg.V6.Addr().Is4In6() {
		return nil, errors.New("vip: the v4 range must be IPv4 and the v6 range IPv6")
	}
	for _, p := range []netip.Prefix{cfg.V4.Masked(), cfg.V6.Masked()} {
		if err := checkRange(p); err != nil {
			return nil, err
		}
	}
	v4, err := newPool(cfg.V4)
	if err != nil {
		return nil, err
	}
	v6, err := newPool(cfg.V6)
	if err != nil {
		return nil, err
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = DefaultMaxStale
	}
	return &Allocator{v4: v4, v6: v6, entries: map[string]*entry{}, maxStale: cfg.MaxStale}, nil
}

// reserved are ranges a VIP must never come from: addresses an application reaches without the
// capture (loopback, which capture leaves alone; link-local; unspecified and multicast), so a host
// given one would be reached directly rather than through the proxy.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("::/128"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("ff00::/8"),
}

// checkRange refuses a range that overlaps a reserved one, or so wide that it takes in much of
// the routable address space (Istio's ranges are a /16 and a /48).
func checkRange(p netip.Prefix) error {
	for _, r := range reserved {
		if p.Overlaps(r) {
			return fmt.Errorf("vip: range %s overlaps %s, which the capture does not redirect", p, r)
		}
	}
	if min := map[bool]int{true: 8, false: 16}[p.Addr().Is4()]; p.Bits() < min {
		return fmt.Errorf("vip: range %s is wider than a /%d", p, min)
	}
	return nil
}

// Ranges returns the IPv4 and IPv6 ranges allocated from.
func (a *Allocator) Ranges() (v4, v6 netip.Prefix) { return a.v4.prefix, a.v6.prefix }

// Allocate returns the addresses of hosts, allocating for those that have none yet. Hosts keep
// what they were given before, whether by an earlier Allocate or by Restore; new hosts are taken
// in sorted order, so the same config on an empty allocator gives the same addresses. A host
// whose range is full gets an invalid address of that family (and is counted, see Exhausted).
// No address inside avoid (what other entries declare) is given, and a host holding one is
// given another: the declaring entry would otherwise lose the traffic to it.
func (a *Allocator) Allocate(hosts []string, avoid ...netip.Prefix) map[string]Addrs {
	sorted := hosts
	if !slices.IsSorted(hosts) { // the registry passes them sorted already
		sorted = slices.Clone(hosts)
		slices.Sort(sorted)
	}
	sorted = slices.Compact(slices.Clip(sorted))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	// Every host is marked current before any is filled, so a reclaim for the first cannot
	// take the address of one later in the list.
	for _, h := range sorted {
		e := a.entries[h]
		if e == nil {
			e = &entry{}
			a.entries[h] = e
		}
		e.seen = a.gen
	}
	a.avoid4, a.avoid6 = a.v4.overlapping(avoid), a.v6.overlapping(avoid)
	a.dropAvoided()
	out := make(map[string]Addrs, len(sorted))
	for _, h := range sorted {
		e := a.entries[h]
		if !e.addrs.V4.IsValid() || !e.addrs.V6.IsValid() {
			a.fill(h, e)
		}
		out[h] = e.addrs
	}
	a.trimStale()
	return out
}

// fill gives e the addresses it lacks, reclaiming a stale host's slot when a range is full.
func (a *Allocator) fill(host string, e *entry) {
	h := hashOf(host)
	for i, p := range []*pool{a.v4, a.v6} {
		addr := &e.addrs.V4
		slot := &e.slot4
		if i == 1 {
			addr, slot = &e.addrs.V6, &e.slot6
		}
		if addr.IsValid() {
			continue
		}
		avoid := a.avoid4
		if i == 1 {
			avoid = a.avoid6
		}
		s, ok := p.take(host, h, avoid)
		if !ok && a.reclaim(p) {
			s, ok = p.take(host, h, avoid)
		}
		if !ok {
			a.exhausted[i]++
			continue
		}
		*slot, *addr = s, p.addr(s)
		a.changed = true
	}
}

// dropAvoided takes back every held address, current or stale, that lies in a declared prefix;
// a current host is given another by fill.
func (a *Allocator) dropAvoided() {
	if len(a.avoid4)+len(a.avoid6) == 0 {
		return
	}
	for _, e := range a.entries {
		if e.addrs.V4.IsValid() && inAny(e.addrs.V4, a.avoid4) {
			a.v4.free(e.slot4)
			e.addrs.V4, a.changed = netip.Addr{}, true
		}
		if e.addrs.V6.IsValid() && inAny(e.addrs.V6, a.avoid6) {
			a.v6.free(e.slot6)
			e.addrs.V6, a.changed = netip.Addr{}, true
		}
	}
}

func inAny(a netip.Addr, prefixes []netip.Prefix) bool {
	for _, q := range prefixes {
		if q.Contains(a) {
			return true
		}
	}
	return false
}

// reclaim frees the slot in p of the host least recently named that is not in the current
// config; false when every holder is current, so nobody's address is ever taken while in use.
func (a *Allocator) reclaim(p *pool) bool {
	if a.noStale == a.gen {
		return false
	}
	var victim string
	var oldest uint64
	p.holders(func(h string) {
		e := a.entries[h]
		if e.seen < a.gen && (victim == "" || e.seen < oldest) {
			victim, oldest = h, e.seen
		}
	})
	if victim == "" {
		a.noStale = a.gen
		return false
	}
	a.release(victim)
	return true
}

// trimStale forgets the least recently seen hosts beyond maxStale.
func (a *Allocator) trimStale() {
	var stale []string
	for h, e := range a.entries {
		if e.seen < a.gen {
			stale = append(stale, h)
		}
	}
	if len(stale) <= a.maxStale {
		return
	}
	slices.SortFunc(stale, func(x, y string) int {
		if d := int64(a.entries[x].seen) - int64(a.entries[y].seen); d != 0 {
			return int(min(max(d, -1), 1))
		}
		return 0
	})
	for _, h := range stale[:len(stale)-a.maxStale] {
		a.release(h)
	}
}

func (a *Allocator) release(host string) {
	e := a.entries[host]
	if e.addrs.V4.IsValid() {
		a.v4.free(e.slot4)
	}
	if e.addrs.V6.IsValid() {
		a.v6.free(e.slot6)
	}
	delete(a.entries, host)
	a.changed = true
}

// Exhausted counts, for IPv4 and IPv6, the times a host got no address because the range was full.
func (a *Allocator) Exhausted() (v4, v6 uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.exhausted[0], a.exhausted[1]
}

// Holding is one host's allocation; Current is false for a host the last Allocate did not name.
type Holding struct {
	Host    string
	Addrs   Addrs
	Current bool
}

// Holdings lists every allocation held, current and stale, in no particular order.
func (a *Allocator) Holdings() []Holding {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Holding, 0, len(a.entries))
	for h, e := range a.entries {
		out = append(out, Holding{Host: h, Addrs: e.addrs, Current: e.seen == a.gen})
	}
	return out
}

// Snapshot returns a copy of every allocation held, current and stale.
func (a *Allocator) Snapshot() map[string]Addrs {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]Addrs, len(a.entries))
	for h, e := range a.entries {
		out[h] = e.addrs
	}
	return out
}

// Restore takes earlier allocations (from a state file) as held, ahead of any Allocate; an
// address outside the ranges or already held by another host is dropped, and that host gets a
// new one when next asked. It returns how many addresses were dropped.
func (a *Allocator) Restore(prior map[string]Addrs) int {
	hosts := make([]string, 0, len(prior))
	for h := range prior {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	a.mu.Lock()
	defer a.mu.Unlock()
	dropped := 0
	for _, h := range hosts {
		if _, dup := a.entries[h]; dup {
			continue
		}
		e := &entry{seen: a.gen}
		if s, ok := a.v4.slotOf(prior[h].V4); ok && a.v4.holder(s) == "" {
			a.v4.set(s, h)
			e.slot4, e.addrs.V4 = s, prior[h].V4
		} else if prior[h].V4.IsValid() {
			dropped++
		}
		if s, ok := a.v6.slotOf(prior[h].V6); ok && a.v6.holder(s) == "" {
			a.v6.set(s, h)
			e.slot6, e.addrs.V6 = s, prior[h].V6
		} else if prior[h].V6.IsValid() {
			dropped++
		}
		a.entries[h] = e
	}
	if dropped > 0 {
		a.changed = true
	}
	return dropped
}

func hashOf(host string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(host))
	return h.Sum64()
}
