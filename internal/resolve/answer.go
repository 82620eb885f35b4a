package resolve

import (
	"context"
	"fmt"
	"hash/maphash"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Answer is one resolution of a name. It is immutable and shared by every caller that gets it:
// callers must not modify Addrs.
type Answer struct {
	// Addrs are the name's addresses, IPv4 first, then IPv6.
	Addrs []netip.Addr
	// Gen identifies the addresses: the resolver gives a new generation exactly when a name's
	// addresses change, so a caller may keep state built from an Answer while Gen stays the same.
	// Generations are never reused, across names too; zero is no answer.
	Gen uint64
}

// Lookup returns the addresses of name; see Resolve. The slice must not be modified.
func (r *Resolver) Lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	ans, err := r.Resolve(ctx, name)
	return ans.Addrs, err
}

// Resolve returns the Answer for name, from the cache when it can. An IP literal is answered as
// is, without a query. A name the server says does not exist gives a *NotFoundError, once its
// last addresses, if any, have bridged 3×NegativeTTL; a failing server gives the last good
// answer when there is one, for up to MaxStale. Every error already names the name ("resolve
// NAME: ..."), so callers need not say it again.
func (r *Resolver) Resolve(ctx context.Context, name string) (Answer, error) {
	if mayBeIP(name) {
		if ans, ok := r.literal(name); ok {
			return ans, nil
		}
	}
	// ToLower and TrimSuffix return name itself when it is already canonical, so a hit
	// allocates nothing.
	key := strings.TrimSuffix(strings.ToLower(name), ".")
	if v, ok := r.entries.Load(key); ok {
		e := v.(*entry)
		if a := e.ans.Load(); a != nil {
			now := r.now()
			if t := now.UnixNano(); t-e.lastUse.Load() >= int64(touchEvery) {
				e.lastUse.Store(t)
			}
			if now.Before(a.expires) {
				if !now.Before(a.refreshAt) && e.refreshing.CompareAndSwap(false, true) {
					if _, err := r.startFlight(key); err != nil {
						e.refreshing.Store(false)
					}
				}
				r.stats.cacheHits.Add(1)
				return a.res, a.err
			}
		}
	}
	if _, ok := dns.IsDomainName(key); !ok || key == "" {
		return Answer{}, fmt.Errorf("resolve %q: not a valid host name", name)
	}
	f, err := r.startFlight(key)
	if err != nil {
		return Answer{}, fmt.Errorf("resolve %s: %w", key, err)
	}
	select {
	case <-f.done:
		return f.ans, f.err
	case <-ctx.Done():
		return Answer{}, fmt.Errorf("resolve %s: %w", key, context.Cause(ctx))
	}
}

// literal returns the Answer for an IP literal, and false when name is not one. Its slot in
// r.literals gives the same Answer back for the same name without parsing it again.
func (r *Resolver) literal(name string) (Answer, bool) {
	slot := &r.literals[maphash.String(r.seed, name)%literalSlots]
	if l := slot.Load(); l != nil && l.name == name {
		return l.ans, true
	}
	addr, err := netip.ParseAddr(strings.Trim(name, "[]"))
	if err != nil {
		return Answer{}, false
	}
	// The name is cloned so the table does not pin the caller's larger string, such as a
	// request line it was cut from.
	l := &literal{name: strings.Clone(name), ans: Answer{Addrs: []netip.Addr{addr}, Gen: r.gen.Add(1)}}
	slot.Store(l)
	return l.ans, true
}

// mayBeIP is a cheap pre-check that spares host names the error netip.ParseAddr would
// allocate: an IP literal has a colon or only digits and dots.
func mayBeIP(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return s != ""
}
