package resolve

import (
	"context"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/testutil/dnstest"
)

func TestRetain(t *testing.T) {
	t.Parallel()
	dns := dnstest.Start(t)
	dns.Set("stays.example.com", 300, "10.0.0.1")
	dns.Set("gone.example.com", 300, "10.0.0.2")
	r, err := New(Config{Server: dns.Addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	for _, name := range []string{"stays.example.com", "Gone.Example.com."} {
		if _, err := r.Lookup(ctx, name); err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
	}
	var asked []string
	dropped := r.Retain(func(name string) bool {
		asked = append(asked, name)
		return name != CacheKey("Gone.Example.com.")
	})
	t.Run("drops only the names keep rejects", func(t *testing.T) {
		if dropped != 1 || len(asked) != 2 {
			t.Fatalf("dropped %d of %d names asked about (%v), want 1 of 2", dropped, len(asked), asked)
		}
	})
	t.Run("answers a kept name from the cache, without a query", func(t *testing.T) {
		before := dns.Queries()
		if _, err := r.Lookup(ctx, "stays.example.com"); err != nil {
			t.Fatal(err)
		}
		if n := dns.Queries() - before; n != 0 {
			t.Fatalf("a kept name cost %d queries", n)
		}
	})
	t.Run("asks the server again for a dropped name", func(t *testing.T) {
		before := dns.Queries()
		if _, err := r.Lookup(ctx, "gone.example.com"); err != nil {
			t.Fatal(err)
		}
		if n := dns.Queries() - before; n == 0 {
			t.Fatal("a dropped name was still answered from the cache")
		}
	})
}
