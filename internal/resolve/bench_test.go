package resolve

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLookupCached measures the hit path every proxied connection takes; it should not
// allocate.
func BenchmarkLookupCached(b *testing.B) {
	srv := startServer(b, behaviour{records: []string{"svc.example. 300 IN A 10.0.0.1", "svc.example. 300 IN AAAA fd00::1"}})
	r, _ := newTestResolver(b, srv, Config{Now: time.Now})
	ctx := context.Background()
	if _, err := r.Lookup(ctx, "svc.example"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Lookup(ctx, "svc.example"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupCachedParallel shows how the hit path holds up when every core looks up the
// same name at once.
func BenchmarkLookupCachedParallel(b *testing.B) {
	srv := startServer(b, behaviour{records: []string{"svc.example. 300 IN A 10.0.0.1"}})
	r, _ := newTestResolver(b, srv, Config{Now: time.Now})
	ctx := context.Background()
	if _, err := r.Lookup(ctx, "svc.example"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Lookup(ctx, "svc.example"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkLookupIPLiteral measures an endpoint given as an IP address, which needs no DNS.
func BenchmarkLookupIPLiteral(b *testing.B) {
	srv := startServer(b, behaviour{})
	r, _ := newTestResolver(b, srv, Config{Now: time.Now})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Lookup(ctx, "192.0.2.7"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsertIntoAFullCache measures what a new name costs the cache once it holds
// MaxEntries names, the eviction scan included, amortized over the inserts it makes room for.
func BenchmarkInsertIntoAFullCache(b *testing.B) {
	srv := startServer(b, behaviour{})
	r, _ := newTestResolver(b, srv, Config{Now: time.Now})
	keys := make([]string, 4*defaultMaxEntries)
	for i := range keys {
		keys[i] = "name-" + strconv.Itoa(i) + ".example"
	}
	for _, k := range keys[:defaultMaxEntries] {
		r.entryFor(k)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.entryFor(keys[i%len(keys)])
		i++
	}
}
