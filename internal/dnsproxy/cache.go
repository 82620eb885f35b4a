package dnsproxy

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cacheKey is a question as far as the upstream's answer depends on it.
type cacheKey struct {
	name  string
	qtype uint16
	class uint16
	// do and cd are the DNSSEC bits, which change what the upstream puts in the answer.
	do, cd bool
}

type cached struct {
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// cache keeps upstream answers for their TTL, up to max entries. When full, expired entries
// are dropped first, then arbitrary ones (Go's map order), which costs no bookkeeping on a hit.
type cache struct {
	mu        sync.Mutex
	max       int
	entries   map[cacheKey]cached
	maxTTL    time.Duration
	negTTL    time.Duration
	evictions uint64
}

func newCache(max int, maxTTL, negTTL time.Duration) *cache {
	return &cache{max: max, entries: make(map[cacheKey]cached, min(max, 1024)), maxTTL: maxTTL, negTTL: negTTL}
}

// get returns a copy of the cached answer for k with its TTLs aged, or nil.
func (c *cache) get(k cacheKey, now time.Time) *dns.Msg {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !now.Before(e.expires) {
		delete(c.entries, k)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil
	}
	m := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT {
				h.Ttl -= min(age, h.Ttl)
			}
		}
	}
	return m
}

// put stores m for k when it may be cached: a NOERROR or NXDOMAIN answer that is not
// truncated, for the lowest TTL in it (RFC 2181 §5.2), or for a negative answer the SOA's
// (RFC 2308 §5), bounded by maxTTL; a negative answer without SOA is kept for negTTL.
func (c *cache) put(k cacheKey, m *dns.Msg, now time.Time) {
	if c.max <= 0 || m.Truncated || (m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError) {
		return
	}
	ttl, ok := ttlOf(m)
	d := time.Duration(ttl) * time.Second
	if !ok {
		d = c.negTTL
	}
	d = min(d, c.maxTTL)
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, there := c.entries[k]; !there && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = cached{msg: m.Copy(), stored: now, expires: now.Add(d)}
}

func (c *cache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		delete(c.entries, k)
		c.evictions++
	}
}

// ttlOf is the TTL to cache m for: its answers' lowest, or for a negative answer the SOA's
// (the lower of its TTL and MINIMUM); ok is false when m has neither.
func ttlOf(m *dns.Msg) (uint32, bool) {
	var ttl uint32
	found := false
	for _, rr := range m.Answer {
		if h := rr.Header(); !found || h.Ttl < ttl {
			ttl, found = h.Ttl, true
		}
	}
	if found {
		return ttl, true
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(soa.Hdr.Ttl, soa.Minttl), true
		}
	}
	return 0, false
}

func (c *cache) stats() (entries int, evictions uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.evictions
}
