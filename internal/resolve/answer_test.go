package resolve

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAnswerGenerations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	resolve := func(t *testing.T, r *Resolver, name string) Answer {
		t.Helper()
		ans, err := r.Resolve(ctx, name)
		if err != nil {
			t.Fatalf("Resolve(%s): %v", name, err)
		}
		return ans
	}
	t.Run("keeps the generation while a refreshed answer has the same addresses", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, behaviour{records: []string{"same.example. 30 IN A 10.0.0.1"}})
		r, clock := newTestResolver(t, srv, Config{})
		first := resolve(t, r, "same.example")
		clock.Advance(31 * time.Second) // expired: asked again, same answer
		if again := resolve(t, r, "same.example"); again.Gen != first.Gen || first.Gen == 0 {
			t.Fatalf("generation %d then %d for the same addresses, want equal and not zero", first.Gen, again.Gen)
		}
	})
	t.Run("gives a new generation when the addresses change", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, behaviour{records: []string{"moves.example. 30 IN A 10.0.0.1"}})
		r, clock := newTestResolver(t, srv, Config{})
		first := resolve(t, r, "moves.example")
		srv.set(t, behaviour{records: []string{"moves.example. 30 IN A 10.0.0.2"}})
		clock.Advance(31 * time.Second)
		moved := resolve(t, r, "moves.example")
		if moved.Gen == first.Gen {
			t.Fatalf("generation %d kept after the addresses moved from %v to %v", moved.Gen, first.Addrs, moved.Addrs)
		}
		if want := []netip.Addr{netip.MustParseAddr("10.0.0.2")}; !slices.Equal(moved.Addrs, want) {
			t.Fatalf("addresses %v, want %v", moved.Addrs, want)
		}
	})
	t.Run("never gives two names or literals the same generation", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, behaviour{records: []string{"a.example. 30 IN A 10.0.0.1", "b.example. 30 IN A 10.0.0.1"}})
		r, _ := newTestResolver(t, srv, Config{})
		gens := map[uint64]string{}
		for _, name := range []string{"a.example", "b.example", "10.0.0.1", "::1"} {
			g := resolve(t, r, name).Gen
			if other, dup := gens[g]; dup {
				t.Fatalf("%s and %s share generation %d", name, other, g)
			}
			gens[g] = name
		}
	})
}

func TestResolveErrorsNameTheNameOnce(t *testing.T) {
	t.Parallel()
	srv := startServer(t, behaviour{records: []string{"here.example. 30 IN A 10.0.0.1"}})
	r, _ := newTestResolver(t, srv, Config{})
	_, err := r.Resolve(context.Background(), "missing.example")
	if err == nil {
		t.Fatal("Resolve of a missing name succeeded")
	}
	if n := strings.Count(err.Error(), "resolve missing.example"); n != 1 {
		t.Fatalf("error %q names the name %d times, want once", err, n)
	}
}
