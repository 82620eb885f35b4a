// Package resolve turns the host names of DNS-resolved ServiceEntries into addresses, caching each
// answer for its TTL so that the proxy's request path only waits on the network when it must.
package resolve

import (
	"context"
	"errors"
	"fmt"
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
	// NegativeTTL is how long a missing name, or a failed server, is remembered before
	// asking again (default 5s).
	NegativeTTL time.Duration
	// Logger receives a warning when a server starts failing; nil discards.
	Logger *slog.Logger
	// Now replaces time.Now so tests can move TTLs forward without sleeping.
	Now func() time.Time
}

// Resolver answers lookups from a TTL cache and asks the DNS server only on a miss, an expiry,
// or, in the background, when a used entry nears its expiry.
type Resolver struct {
	servers []string
	udp     dns.Client
	tcp     dns.Client
	timeout time.Duration
	minTTL  time.Duration
	maxTTL  time.Duration
	negTTL  time.Duration
	log     *slog.Logger
	now     func() time.Time

	// The cache is read on every connection and written once per query, hence the RWMutex;
	// the answers themselves are immutable and swapped through atomic pointers.
	mu      sync.RWMutex
	entries map[string]*entry

	// flightMu guards flights and closed, and orders wg.Add before Close's wg.Wait.
	flightMu sync.Mutex
	flights  map[string]*flight
	closed   bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// entry is the cache slot of one name; it outlives the answers stored in it so that the
// failure streak and the last good answer survive from one query to the next.
type entry struct {
	ans        atomic.Pointer[answer]
	refreshing atomic.Bool
	failing    atomic.Bool

	// good is the last answer with addresses of each family, IPv4 then IPv6, so that a family
	// whose query fails can be stood in for by its own last addresses while the other family
	// stays fresh. Only the name's flight touches it, and flights of one name never overlap.
	good [2][]netip.Addr
}

// answer is what a lookup of a name returns until it expires; it is never changed once stored.
type answer struct {
	addrs     []netip.Addr
	err       error
	refreshAt time.Time
	expires   time.Time
}

// flight is one query in progress; every lookup of the same name waits on it instead of
// sending its own.
type flight struct {
	done  chan struct{}
	addrs []netip.Addr
	err   error
}

// New makes a Resolver and starts its cache sweeper; Close stops it.
func New(cfg Config) (*Resolver, error) {
	servers, err := serversOf(cfg.Server)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 || cfg.MinTTL < 0 || cfg.MaxTTL < 0 || cfg.NegativeTTL < 0 {
		return nil, errors.New("resolve: durations must not be negative")
	}
	r := &Resolver{
		servers: servers,
		timeout: orDefault(cfg.Timeout, defaultTimeout),
		minTTL:  orDefault(cfg.MinTTL, defaultMinTTL),
		maxTTL:  orDefault(cfg.MaxTTL, defaultMaxTTL),
		negTTL:  orDefault(cfg.NegativeTTL, defaultNegativeTTL),
		log:     cfg.Logger,
		now:     cfg.Now,
		entries: make(map[string]*entry),
		flights: make(map[string]*flight),
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

// Lookup returns the addresses of name (IPv4 first, then IPv6), from the cache when it can.
// The returned slice is shared by every caller of the same name: callers must not modify it.
// An IP literal is returned as is, without a query. A name the server says does not exist
// gives a *NotFoundError; a failing server gives the last good answer when there is one.
func (r *Resolver) Lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	if mayBeIP(name) {
		if addr, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
			return []netip.Addr{addr}, nil
		}
	}
	// ToLower and TrimSuffix return name itself when it is already canonical, so a hit
	// allocates nothing.
	key := strings.TrimSuffix(strings.ToLower(name), ".")
	r.mu.RLock()
	e := r.entries[key]
	r.mu.RUnlock()
	if e != nil {
		if a := e.ans.Load(); a != nil {
			now := r.now()
			if now.Before(a.expires) {
				if !now.Before(a.refreshAt) && e.refreshing.CompareAndSwap(false, true) {
					if _, err := r.startFlight(key); err != nil {
						e.refreshing.Store(false)
					}
				}
				return a.addrs, a.err
			}
		}
	}
	if _, ok := dns.IsDomainName(key); !ok || key == "" {
		return nil, fmt.Errorf("resolve %q: not a valid host name", name)
	}
	f, err := r.startFlight(key)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", key, err)
	}
	select {
	case <-f.done:
		return f.addrs, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("resolve %s: %w", key, context.Cause(ctx))
	}
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
		f.addrs, f.err = r.resolve(key)
		r.flightMu.Lock()
		delete(r.flights, key)
		r.flightMu.Unlock()
		close(f.done)
	}()
	return f, nil
}

// entryFor returns the cache slot of key, making it if needed.
func (r *Resolver) entryFor(key string) *entry {
	r.mu.RLock()
	e := r.entries[key]
	r.mu.RUnlock()
	if e != nil {
		return e
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e = r.entries[key]; e == nil {
		e = new(entry)
		r.entries[key] = e
	}
	return e
}

// resolve queries A and AAAA for key, stores what lookups should get from now on and
// returns it. It runs in a flight, so only one runs per name at a time.
func (r *Resolver) resolve(key string) ([]netip.Addr, error) {
	e := r.entryFor(key)
	defer e.refreshing.Store(false)

	fqdn := dns.Fqdn(key)
	var fams [2]typeAnswer
	var wg sync.WaitGroup
	wg.Go(func() { fams[1] = r.queryType(fqdn, dns.TypeAAAA) })
	fams[0] = r.queryType(fqdn, dns.TypeA)
	wg.Wait()

	now := r.now()
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
		e.good = [2][]netip.Addr{fams[0].addrs, fams[1].addrs}
		addrs := r.store(e, fresh, nil, now, ttl)
		if e.failing.Swap(false) {
			r.log.Info("DNS server answers again", slog.String("name", key), slog.Int("addresses", len(addrs)))
		}
		return addrs, nil

	case failure == nil:
		nf := &NotFoundError{Name: key}
		if last := e.lastGood(); last != nil {
			// The brief blip of a missing record during a zone change must not cut
			// traffic, so a name that had addresses keeps them like on a failure.
			return r.serveStale(e, key, last, now, nf), nil
		}
		e.failing.Store(false)
		r.store(e, nil, nf, now, r.negTTL)
		return nil, nf

	case len(merged) > 0:
		// Half an answer, or the last good addresses standing in for the failed half,
		// beats none; it is kept only briefly so that the failed half shows up soon
		// after the server recovers.
		for i, fa := range fams {
			if fa.err == nil {
				e.good[i] = fa.addrs
			}
		}
		r.warnOnce(e, key, failure, len(merged))
		return r.store(e, merged, nil, now, min(ttl, r.negTTL)), nil

	case e.lastGood() != nil:
		// The family that answered has no addresses and the one that failed had none
		// before: the name may be changing, so its last addresses are kept like on a
		// failure.
		return r.serveStale(e, key, e.lastGood(), now, failure), nil

	default:
		// Failures are not cached: with nothing to serve, the next lookup might as well
		// try again, and the flight already spares the server concurrent retries.
		r.warnOnce(e, key, failure, 0)
		return nil, fmt.Errorf("resolve %s: %w", key, failure)
	}
}

// lastGood is the last good addresses of both families, IPv4 first, or nil when there are none.
func (e *entry) lastGood() []netip.Addr {
	if len(e.good[0])+len(e.good[1]) == 0 {
		return nil
	}
	return append(append(make([]netip.Addr, 0, len(e.good[0])+len(e.good[1])), e.good[0]...), e.good[1]...)
}

// serveStale keeps the last good addresses for NegativeTTL, so that lookups during an
// outage neither wait for the server nor lose the name.
func (r *Resolver) serveStale(e *entry, key string, last []netip.Addr, now time.Time, cause error) []netip.Addr {
	r.warnOnce(e, key, cause, len(last))
	return r.store(e, last, nil, now, r.negTTL)
}

// warnOnce logs the first failure of a streak only, so a dead server does not flood the log.
func (r *Resolver) warnOnce(e *entry, key string, cause error, serving int) {
	if e.failing.CompareAndSwap(false, true) {
		r.log.Warn("DNS lookup failed; further failures for this name stay quiet until it recovers",
			slog.String("name", key), slog.Int("addresses_served", serving), slog.Any("error", cause))
	}
}

// store makes addrs, or err, what lookups of e get for ttl and returns the slice it stored.
// When the addresses are those already stored, the stored slice is kept, so that callers
// that key their own state by the slice see no change.
func (r *Resolver) store(e *entry, addrs []netip.Addr, err error, now time.Time, ttl time.Duration) []netip.Addr {
	if prev := e.ans.Load(); prev != nil && prev.err == nil && err == nil && slices.Equal(prev.addrs, addrs) {
		addrs = prev.addrs
	}
	a := &answer{addrs: addrs, err: err, expires: now.Add(ttl)}
	a.refreshAt = now.Add(ttl * refreshPercent / 100)
	if err != nil {
		// A missing name is not worth a background query; it is asked again on expiry.
		a.refreshAt = a.expires
	}
	e.ans.Store(a)
	return addrs
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

// sweep drops the entries nobody has used for a while, so that a gateway resolving names its
// clients choose does not grow the cache without bound.
func (r *Resolver) sweep(now time.Time) {
	// Holding flightMu keeps a flight from storing into an entry that is being dropped.
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, e := range r.entries {
		if _, busy := r.flights[key]; busy {
			continue
		}
		if a := e.ans.Load(); a == nil || now.After(a.expires.Add(idleEviction)) {
			delete(r.entries, key)
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
