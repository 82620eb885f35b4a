package resolve

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

func TestStatsCountQueriesFailuresAndCacheHits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		server  behaviour
		lookups int
		want    Stats
	}{
		{
			name:    "a first lookup asks A and AAAA and the later ones are cache hits",
			server:  behaviour{records: []string{"svc.example. 300 IN A 10.0.0.1"}},
			lookups: 3,
			want:    Stats{Queries: 2, Failures: 0, CacheHits: 2},
		},
		{
			name:    "a failing server counts both questions failed and caches nothing",
			server:  behaviour{rcode: dns.RcodeServerFailure},
			lookups: 2,
			want:    Stats{Queries: 4, Failures: 4, CacheHits: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tt.server)
			r, err := New(Config{Server: srv.addr})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			for range tt.lookups {
				r.Lookup(context.Background(), "svc.example")
			}
			if got := r.Stats(); got != tt.want {
				t.Errorf("Stats() = %+v, want %+v (server saw %d questions)", got, tt.want, srv.queries())
			}
		})
	}
}
