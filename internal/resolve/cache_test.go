package resolve

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSweepDropsOnlyIdleEntries(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{records: []string{"idle.example. 10 IN A 10.0.0.1", "busy.example. 10 IN A 10.0.0.2"}})
	r, clock := newTestResolver(t, srv, Config{})
	mustLookup(t, r, "idle.example", addrs("10.0.0.1"))
	clock.Advance(idleEviction)
	mustLookup(t, r, "busy.example", addrs("10.0.0.2"))
	clock.Advance(time.Minute)
	r.sweep(clock.Now())

	names := cachedNames(r)
	idle := slices.Contains(names, "idle.example")
	busy := slices.Contains(names, "busy.example")
	if idle || !busy {
		t.Errorf("after the sweep: idle entry kept %v, busy entry kept %v; want false, true", idle, busy)
	}
}

func TestCacheEvictsMissingNamesFirstThenTheLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{records: []string{
		"a.example. 300 IN A 10.0.0.1",
		"b.example. 300 IN A 10.0.0.2",
		"c.example. 300 IN A 10.0.0.3",
		"d.example. 300 IN A 10.0.0.4",
		"e.example. 300 IN A 10.0.0.5",
	}})
	r, clock := newTestResolver(t, srv, Config{MaxEntries: 4})
	lookup := func(name string) {
		t.Helper()
		clock.Advance(2 * time.Second)
		if _, err := r.Lookup(t.Context(), name); err != nil && !strings.HasPrefix(name, "missing") {
			t.Fatalf("Lookup(%q): %v", name, err)
		}
	}
	for _, name := range []string{"a.example", "b.example", "missing.example", "a.example", "c.example"} {
		lookup(name)
	}
	if got, want := cachedNames(r), []string{"a.example", "b.example", "c.example", "missing.example"}; !slices.Equal(got, want) {
		t.Fatalf("cached %v, want %v", got, want)
	}
	lookup("d.example")
	if got, want := cachedNames(r), []string{"a.example", "b.example", "c.example", "d.example"}; !slices.Equal(got, want) {
		t.Errorf("after a fifth name: cached %v, want %v, the missing name evicted first", got, want)
	}
	lookup("e.example")
	if got, want := cachedNames(r), []string{"a.example", "c.example", "d.example", "e.example"}; !slices.Equal(got, want) {
		t.Errorf("after a sixth name: cached %v, want %v, b.example evicted as least recently used", got, want)
	}
}

func TestCacheStaysWithinMaxEntriesUnderManyNames(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{records: []string{"hot.example. 300 IN A 10.0.0.1"}})
	const maxEntries = 50
	r, clock := newTestResolver(t, srv, Config{MaxEntries: maxEntries})
	var most atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				clock.Advance(time.Second)
				mustLookup(t, r, "hot.example", addrs("10.0.0.1"))
				name := "client-" + strconv.Itoa(w) + "-" + strconv.Itoa(i) + ".example"
				var nf *NotFoundError
				if _, err := r.Lookup(context.Background(), name); !errors.As(err, &nf) {
					t.Errorf("Lookup(%q): %v, want a *NotFoundError", name, err)
				}
				n := int64(len(cachedNames(r)))
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
			}
		})
	}
	wg.Wait()
	if n := most.Load(); n > maxEntries {
		t.Errorf("cache held up to %d names of 401, want at most %d", n, maxEntries)
	}
	if !slices.Contains(cachedNames(r), "hot.example") {
		t.Errorf("the name in use on every connection was evicted")
	}
}

// cachedNames lists the names in r's cache, sorted.
func cachedNames(r *Resolver) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for name := range r.entries.Range {
		names = append(names, name.(string))
	}
	if len(names) != r.count {
		panic("resolve: count " + strconv.Itoa(r.count) + " for " + strconv.Itoa(len(names)) + " cached names")
	}
	slices.Sort(names)
	return names
}
