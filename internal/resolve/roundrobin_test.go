package resolve

import (
	"net/netip"
	"sync"
	"testing"
)

func TestRoundRobin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		addrs []netip.Addr
		calls int
		want  []netip.Addr
	}{
		{
			name:  "goes through every address in turn and starts over",
			addrs: addrs("10.0.0.1", "10.0.0.2", "fd00::3"),
			calls: 5,
			want:  addrs("10.0.0.1", "10.0.0.2", "fd00::3", "10.0.0.1", "10.0.0.2"),
		},
		{
			name:  "keeps returning a single address",
			addrs: addrs("10.0.0.1"),
			calls: 2,
			want:  addrs("10.0.0.1", "10.0.0.1"),
		},
		{
			name:  "returns the zero address when there is none",
			calls: 1,
			want:  []netip.Addr{{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rr RoundRobin
			for i := range tc.calls {
				if got := rr.Next(tc.addrs); got != tc.want[i] {
					t.Errorf("call %d: Next = %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestRoundRobinSpreadsConcurrentCallsEvenly(t *testing.T) {
	t.Parallel()
	var rr RoundRobin
	list := addrs("10.0.0.1", "10.0.0.2", "10.0.0.3")
	var mu sync.Mutex
	seen := make(map[netip.Addr]int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 300 {
				a := rr.Next(list)
				mu.Lock()
				seen[a]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, a := range list {
		if seen[a] != 400 {
			t.Errorf("%v picked %d times out of 1200, want 400", a, seen[a])
		}
	}
}

func TestRoundRobinNextIndex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		n     int
		calls int
		want  []int
	}{
		{name: "goes through every index in turn and starts over", n: 3, calls: 5, want: []int{0, 1, 2, 0, 1}},
		{name: "keeps returning the only index", n: 1, calls: 2, want: []int{0, 0}},
		{name: "returns -1 when there is nothing to pick", n: 0, calls: 1, want: []int{-1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rr RoundRobin
			for i := range tc.calls {
				if got := rr.NextIndex(tc.n); got != tc.want[i] {
					t.Errorf("call %d: NextIndex(%d) = %d, want %d", i, tc.n, got, tc.want[i])
				}
			}
		})
	}
	t.Run("shares its turn with Next", func(t *testing.T) {
		t.Parallel()
		var rr RoundRobin
		list := addrs("10.0.0.1", "10.0.0.2", "10.0.0.3")
		if got := rr.Next(list); got != list[0] {
			t.Errorf("Next = %v, want %v", got, list[0])
		}
		if got := rr.NextIndex(len(list)); got != 1 {
			t.Errorf("NextIndex after Next = %d, want 1", got)
		}
	})
}
