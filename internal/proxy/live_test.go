package proxy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
)

// TestCountingAllAtOnceCountsWhatServiceByServiceDoes checks countAll, the parallel count a
// proxy's first Update makes, against counting the services one by one as reloads do.
func TestCountingAllAtOnceCountsWhatServiceByServiceDoes(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("with seed %d", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 29))
			dir := t.TempDir()
			serial := 0
			for i := range 6 {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.yaml", i)), []byte(randomDocs(r, &serial)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			res, err := compile.Paths([]string{dir}, config.Options{Namespace: "default"}, 1)
			if err != nil {
				t.Fatal(err)
			}
			snap := res.Snapshot
			if len(snap.Services) == 0 {
				t.Skip("this seed declares no service")
			}
			want := liveState{health: map[string]int{}, names: map[string]int{}, clusters: map[string]int{}}
			for _, svc := range snap.Services {
				want.count(svc, 1, nil)
			}
			got := countAll(snap, nil)
			for _, c := range []struct {
				name      string
				got, want map[string]int
			}{
				{name: "health keys", got: got.health, want: want.health},
				{name: "names", got: got.names, want: want.names},
				{name: "clusters", got: got.clusters, want: want.clusters},
			} {
				if len(c.want) == 0 && c.name != "names" {
					t.Fatalf("%s: the services counted one by one have none, so the test shows nothing", c.name)
				}
				if !maps.Equal(c.got, c.want) {
					t.Errorf("%s counted at once: %v, one by one: %v", c.name, c.got, c.want)
				}
			}
			if got.snap != snap {
				t.Error("the count is not of the snapshot it was given")
			}
		})
	}
}
