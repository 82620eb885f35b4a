// Package resolve turns the host names of DNS-resolved ServiceEntries into addresses, caching each
// answer for its TTL so that the proxy's request path only waits on the network when it must.
package resolve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

const (
	defaultTimeout     = 2 * time.Second
	defaultMinTTL      = time.Second
	defaultMaxTTL      = 5 * time.Minute
	defaultNegativeTTL = 5 * time.Second
	defaultMaxStale    = time.Hour
	defaultMaxEntries  = 10_000

	// A full cache drops an eighth of its entries at once, so the scan that picks them is
	// paid once per many inserts.
	evictFraction = 8
	// A lookup marks its entry as used at most this often, so that busy names do not make
	// every core write the same cache line.
	touchEvery = time.Second
	// IP literals are kept in a direct-mapped table this big: a collision only costs the
	// allocation that the table spares, and clients choosing many addresses cannot grow it.
	literalSlots = 64

	// The last addresses of a name the server says has none are served for this many
	// NegativeTTLs, to bridge a zone change without keeping a deleted name alive (RFC 8767
	// lets a stale answer outlive a failing server, not an authoritative answer).
	goneGrace = 3

	// An entry used after 80% of its TTL is refreshed in the background, so a busy name is
	// renewed before it expires and its callers never wait for the server.
	refreshPercent = 80

	// An unused entry is kept this long after it expires, so that its last good answer can
	// still cover a server outage for a name that is used only now and then.
	idleEviction  = 10 * time.Minute
	sweepInterval = time.Minute
)

// ErrClosed is returned by lookups that need the network after Close, because no query may
// start once the background work has been stopped.
var ErrClosed = errors.New("resolver closed")

// NotFoundError reports that the server said the name does not exist or has no address
// records, as opposed to a server that could not answer.
type NotFoundError struct {
	// Name is the looked-up name, lower case and without a trailing dot.
	Name string
}

// Error describes the missing name the way the net package does, so logs read the same.
func (e *NotFoundError) Error() string {
	return "resolve " + e.Name + ": no such host"
}

// Config tunes a Resolver; the zero value asks the system's name servers with the defaults below.
type Config struct {
	// Server is the "host:port" of the DNS server to ask; empty means the nameservers of
	// /etc/resolv.conf, and a missing port means 53.
	Server string
	// Timeout bounds each query to one server (default 2s), so a dead server costs a
	// bounded wait before the last good answer is served.
	Timeout time.Duration
	// MinTTL and MaxTTL clamp the TTLs of answers (defaults 1s and 5m): a zero TTL would
	// send every connection to the server, a day-long one would hide a move for a day.
	MinTTL, MaxTTL time.Duration
	// NegativeTTL is how long a missing name is remembered before asking again, and how
	// long the last good addresses that stand in for a failing server are served before
	// asking again (default 5s). A failure with nothing to serve is not remembered: the next
	// lookup asks again, since one lost packet should not fail every connection for 5s.
	NegativeTTL time.Duration
	// MaxStale bounds how long after the last answer with addresses those addresses are
	// still served while the server fails (default 1h); RFC 8767 allows up to days, but a
	// name that truly moved should not keep its old address for long. An answer that the
	// name has no addresses ends them sooner, after 3×NegativeTTL.
	MaxStale time.Duration
	// MaxEntries bounds the number of names cached (default 10,000), since the forward
	// proxy resolves names its clients choose.
	MaxEntries int
	// Logger receives a warning when a server starts failing; nil discards.
	Logger *slog.Logger
	// Now replaces time.Now so tests can move TTLs forward without sleeping.
	Now func() time.Time
}

// Resolver answers lookups from a TTL cache and asks the DNS server only on a miss, an expiry,
// or, in the background, when a used entry nears its expiry.
type Resolver struct {
	servers  []string
	udp      dns.Client
	tcp      dns.Client
	timeout  time.Duration
	minTTL   time.Duration
	maxTTL   time.Duration
	negTTL   time.Duration
	maxStale time.Duration
	maxCount int
	log      *slog.Logger
	now      func() time.Time

	// The cache is read on every connection and written once per new name, so readers take
	// no lock: entries (string → *entry) is a sync.Map, and the answers in it are immutable
	// and swapped through atomic pointers. mu serializes the writers, which keep count.
	entries sync.Map
	mu      sync.Mutex
	count   int

	// literals keeps the answers for IP literals, so that an endpoint given as an address
	// gets the same slice on every lookup instead of a new one.
	literals [literalSlots]atomic.Pointer[literal]
	seed     maphash.Seed
	// gen numbers the Answers handed out; 0 is never used, so a zero Answer matches none.
	gen atomic.Uint64

	// flightMu guards flights and closed, and orders wg.Add before Close's wg.Wait.
	flightMu sync.Mutex
	flights  map[string]*flight
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stats counters
}

// entry is the cache slot of one name; it outlives the answers stored in it so that the
// failure streak and the last good answer survive from one query to the next.
type entry struct {
	ans        atomic.Pointer[answer]
	refreshing atomic.Bool
	failing    atomic.Bool
	// lastUse is when a lookup last used the entry, in Unix nanoseconds to within
	// touchEvery, for choosing what to evict from a full cache.
	lastUse atomic.Int64

	// good is the last answer of each family, IPv4 then IPv6, and goodAt when it arrived, so
	// that a family whose query fails can be stood in for by its own last addresses, up to
	// MaxStale, while the other family stays fresh. goneAt is the first of the current streak
	// of answers saying the name has no addresses, zero outside one. Only the name's flight
	// touches these, and flights of one name never overlap.
	good   [2][]netip.Addr
	goodAt [2]time.Time
	goneAt time.Time
}

// familyName names the address families in the order of entry.good, for logs.
var familyName = [2]string{"IPv4", "IPv6"}

// answer is what a lookup of a name returns until it expires; it is never changed once stored.
type answer struct {
	res       Answer
	err       error
	refreshAt time.Time
	expires   time.Time
}

// literal is the answer for one IP literal, as written by the caller.
type literal struct {
	name string
	ans  Answer
}

// flight is one query in progress; every lookup of the same name waits on it instead of
// sending its own.
type flight struct {
	done chan struct{}
	ans  Answer
	err  error
}

// New makes a Resolver and starts its cache sweeper; Close stops it.
func New(cfg Config) (*Resolver, error) {
	servers, err := serversOf(cfg.Server)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 || cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.NegativeTTL < 0 || cfg.MaxStale < 0 {
		return nil, errors.New("resolve: durations must not be negative")
	}
	if cfg.MaxEntries < 0 {
		return nil, errors.New("resolve: MaxEntries must not be negative")
	}
	r := &Resolver{
		servers:  servers,
		timeout:  orDefault(cfg.Timeout, defaultTimeout),
		minTTL:   orDefault(cfg.MinTTL, defaultMinTTL),
		maxTTL:   orDefault(cfg.MaxTTL, defaultMaxTTL),
		negTTL:   orDefault(cfg.NegativeTTL, defaultNegativeTTL),
		maxStale: orDefault(cfg.MaxStale, defaultMaxStale),
		maxCount: cmp.Or(cfg.MaxEntries, defaultMaxEntries),
		log:      cfg.Logger,
		now:      cfg.Now,
		flights:  make(map[string]*flight),
		seed:     maphash.MakeSeed(),
	}
	if r.minTTL > r.maxTTL {
		return nil, fmt.Errorf("resolve: MinTTL %s is above MaxTTL %s", r.minTTL, r.maxTTL)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.udp = dns.Client{Net: "udp", Timeout: r.timeout}
	r.tcp = dns.Client{Net: "tcp", Timeout: r.timeout}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.sweepLoop()
	return r, nil
}

// serversOf turns the configured server, or /etc/resolv.conf, into "host:port" addresses.
func serversOf(server string) ([]string, error) {
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
		}
		return []string{server}, nil
	}
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("resolve: read name servers: %w", err)
	}
	if len(conf.Servers) == 0 {
		return nil, errors.New("resolve: /etc/resolv.conf lists no nameserver")
	}
	servers := make([]string, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		servers = append(servers, net.JoinHostPort(s, conf.Port))
	}
	return servers, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// startFlight joins the query in progress for key, or starts one.
func (r *Resolver) startFlight(key string) (*flight, error) {
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if f := r.flights[key]; f != nil {
		return f, nil
	}
	f := &flight{done: make(chan struct{})}
	r.flights[key] = f
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f.ans, f.err = r.resolve(key)
		r.flightMu.Lock()
		delete(r.flights, key)
		r.flightMu.Unlock()
		close(f.done)
	}()
	return f, nil
}

// entryFor returns the cache slot of key, making it if needed, and evicting others first if
// the cache is full.
func (r *Resolver) entryFor(key string) *entry {
	if v, ok := r.entries.Load(key); ok {
		return v.(*entry)
	}
	// flightMu before mu, as in sweep: eviction passes over the names in flight.
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.entries.Load(key); ok {
		return v.(*entry)
	}
	if r.count >= r.maxCount {
		r.evictLocked()
	}
	e := new(entry)
	e.lastUse.Store(r.now().UnixNano())
	r.entries.Store(key, e)
	r.count++
	return e
}

// evictLocked drops an eighth of a full cache: first the names without addresses, which cost
// nothing to lose, then the names used least recently. Names in flight are passed over, since
// their flight is about to store into them. Both flightMu and mu must be held.
func (r *Resolver) evictLocked() {
	type candidate struct {
		key      string
		negative bool
		lastUse  int64
	}
	cands := make([]candidate, 0, r.count)
	for k, v := range r.entries.Range {
		key, e := k.(string), v.(*entry)
		if _, busy := r.flights[key]; busy {
			continue
		}
		a := e.ans.Load()
		cands = append(cands, candidate{key: key, negative: a == nil || a.err != nil, lastUse: e.lastUse.Load()})
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.negative != b.negative {
			if a.negative {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.lastUse, b.lastUse)
	})
	n := r.count - r.maxCount + max(1, r.maxCount/evictFraction)
	for _, c := range cands[:min(n, len(cands))] {
		r.entries.Delete(c.key)
		r.count--
	}
}

// resolve queries A and AAAA for key, stores what lookups should get from now on and
// returns it. It runs in a flight, so only one runs per name at a time.
func (r *Resolver) resolve(key string) (Answer, error) {
	e := r.entryFor(key)
	defer e.refreshing.Store(false)

	fqdn := dns.Fqdn(key)
	var fams [2]typeAnswer
	var wg sync.WaitGroup
	wg.Go(func() { fams[1] = r.queryType(fqdn, dns.TypeAAAA) })
	fams[0] = r.queryType(fqdn, dns.TypeA)
	wg.Wait()

	now := r.now()
	r.dropTooOld(e, key, now)
	var failure error
	var fresh, merged []netip.Addr
	for i, fa := range fams {
		if fa.err != nil {
			if failure == nil {
				failure = fa.err
			} else {
				failure = fmt.Errorf("%w; %w", failure, fa.err)
			}
			// The failed family is stood in for by its own last good addresses, never by
			// the other family's, so that a record that moved in the family that still
			// answers is followed at once.
			merged = append(merged, e.good[i]...)
			continue
		}
		fresh = append(fresh, fa.addrs...)
		merged = append(merged, fa.addrs...)
	}
	ttl := r.clamp(min(fams[0].ttl, fams[1].ttl))

	switch {
	case failure == nil && len(fresh) > 0:
		e.remember(fams, now)
		ans := r.store(e, fresh, nil, now, ttl)
		if e.failing.Swap(false) {
			r.log.Info("DNS server answers again", slog.String("name", key), slog.Int("addresses", len(ans.Addrs)))
		}
		return ans, nil

	case len(merged) > 0:
		// Half an answer, or the last good addresses standing in for the failed half,
		// beats none; it is kept only briefly so that the failed half shows up soon
		// after the server recovers.
		e.remember(fams, now)
		r.warnOnce(e, key, failure, len(merged))
		return r.store(e, merged, nil, now, min(ttl, r.negTTL)), nil
	}

	// Nothing fresh to serve, and no failed family has addresses left to stand in. The
	// families that answered say the name has none: a blip during a zone change must not
	// cut traffic, so their last addresses are kept like on a failure, but only for a few
	// negative TTLs from the first such answer, since the name may really be gone.
	answered := fams[0].err == nil || fams[1].err == nil
	if answered && e.goneAt.IsZero() {
		e.goneAt = now
	}
	var last []netip.Addr
	if answered && now.Sub(e.goneAt) < goneGrace*r.negTTL {
		for i, fa := range fams {
			if fa.err == nil {
				last = append(last, e.good[i]...)
			}
		}
	}
	cause := failure
	if cause == nil {
		cause = &NotFoundError{Name: key}
	}
	if last != nil {
		r.warnOnce(e, key, cause, len(last))
		return r.store(e, last, nil, now, r.negTTL), nil
	}
	e.remember(fams, now)
	if failure == nil {
		e.failing.Store(false)
		r.store(e, nil, cause, now, r.negTTL)
		return Answer{}, cause
	}
	// Failures are not cached: with nothing to serve, the next lookup might as well try
	// again, and the flight already spares the server concurrent retries.
	r.warnOnce(e, key, failure, 0)
	return Answer{}, fmt.Errorf("resolve %s: %w", key, failure)
}

// remember makes the answer of each family that answered its last good addresses, even an
// empty one, so that a record removed from the zone never comes back as a stand-in. It ends
// the name's streak of answers without addresses once there are some.
func (e *entry) remember(fams [2]typeAnswer, now time.Time) {
	for i, fa := range fams {
		if fa.err == nil {
			e.good[i], e.goodAt[i] = fa.addrs, now
			if len(fa.addrs) > 0 {
				e.goneAt = time.Time{}
			}
		}
	}
}

// dropTooOld forgets the last good addresses of a family that last answered more than
// MaxStale ago, so that a long outage ends in errors rather than an address that may have
// been reused by someone else.
func (r *Resolver) dropTooOld(e *entry, key string, now time.Time) {
	for i := range e.good {
		if len(e.good[i]) > 0 && now.Sub(e.goodAt[i]) > r.maxStale {
			r.log.Warn("DNS answer older than MaxStale is no longer served",
				slog.String("name", key), slog.String("family", familyName[i]),
				slog.Int("addresses", len(e.good[i])), slog.Duration("age", now.Sub(e.goodAt[i])))
			e.good[i] = nil
		}
	}
}

// warnOnce logs the first failure of a streak only, so a dead server does not flood the log.
func (r *Resolver) warnOnce(e *entry, key string, cause error, serving int) {
	if e.failing.CompareAndSwap(false, true) {
		r.log.Warn("DNS lookup failed; further failures for this name stay quiet until it recovers",
			slog.String("name", key), slog.Int("addresses_served", serving), slog.Any("error", cause))
	}
}

// store makes addrs, or err, what lookups of e get for ttl and returns the Answer it stored.
// When the addresses are those already stored, the stored Answer and its generation are
// kept, so that callers that key their own state by the generation see no change.
func (r *Resolver) store(e *entry, addrs []netip.Addr, err error, now time.Time, ttl time.Duration) Answer {
	var res Answer
	switch prev := e.ans.Load(); {
	case err != nil:
	case prev != nil && prev.err == nil && slices.Equal(prev.res.Addrs, addrs):
		res = prev.res
	default:
		res = Answer{Addrs: addrs, Gen: r.gen.Add(1)}
	}
	a := &answer{res: res, err: err, expires: now.Add(ttl)}
	a.refreshAt = now.Add(ttl * refreshPercent / 100)
	if err != nil {
		// A missing name is not worth a background query; it is asked again on expiry.
		a.refreshAt = a.expires
	}
	e.ans.Store(a)
	return res
}

// clamp turns a TTL in seconds into a cache lifetime within [MinTTL, MaxTTL].
func (r *Resolver) clamp(ttl uint32) time.Duration {
	return min(max(time.Duration(ttl)*time.Second, r.minTTL), r.maxTTL)
}

func (r *Resolver) sweepLoop() {
	defer r.wg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
			r.sweep(r.now())
		}
	}
}

// sweep drops the entries nobody has used for a while, so that the memory of names a
// gateway's clients chose once is given back long before MaxEntries would evict them.
func (r *Resolver) sweep(now time.Time) {
	// Holding flightMu keeps a flight from storing into an entry that is being dropped.
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range r.entries.Range {
		key, e := k.(string), v.(*entry)
		if _, busy := r.flights[key]; busy {
			continue
		}
		if a := e.ans.Load(); a == nil || now.After(a.expires.Add(idleEviction)) {
			r.entries.Delete(key)
			r.count--
		}
	}
}

// Close stops the sweeper and any query in progress and waits for them; lookups after Close
// are answered from the cache only.
func (r *Resolver) Close() {
	r.flightMu.Lock()
	if r.closed {
		r.flightMu.Unlock()
		return
	}
	r.closed = true
	r.flightMu.Unlock()
	r.cancel()
	r.wg.Wait()
}
