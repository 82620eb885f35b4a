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
