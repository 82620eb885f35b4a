package envoy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// scaleFleet writes n STATIC HTTP ServiceEntries, entry 0 in a file of its own so that a
// reload after it changed decodes that file only and the registry reuses every other service,
// as a reload of a real folder does.
type scaleFleet struct {
	dir   string
	cache *compile.Cache
	n     int
	ver   uint64
}

func newScaleFleet(tb testing.TB, n int) *scaleFleet {
	tb.Helper()
	f := &scaleFleet{dir: tb.TempDir(), cache: compile.NewCache(), n: n}
	var b strings.Builder
	for i := 1; i < n; i++ {
		writeScaleEntry(&b, i, 1)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "many.yaml"), []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

func writeScaleEntry(b *strings.Builder, i, last int) {
	fmt.Fprintf(b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: se-%d, namespace: default}\nspec:\n  hosts: [svc-%d.example.com]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.%d.%d.1}, {address: 10.%d.%d.%d}]\n",
		i, i, i/256%256, i%256, i/256%256, i%256, last%250+2)
}

// snapshot rewrites entry 0 with its second endpoint at .variant and compiles the folder.
func (f *scaleFleet) snapshot(tb testing.TB, variant int) *registry.Snapshot {
	tb.Helper()
	var b strings.Builder
	writeScaleEntry(&b, 0, variant)
	if err := os.WriteFile(filepath.Join(f.dir, "one.yaml"), []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	f.ver++
	res, err := f.cache.Paths([]string{f.dir}, config.Options{}, f.ver)
	if err != nil {
		tb.Fatal(err)
	}
	if res.Errors() > 0 {
		tb.Fatal(res.Diagnostics[0])
	}
	return res.Snapshot
}

var scaleNode = Node{ID: "sidecar~10.9.0.1~c.default~default.svc.cluster.local", Namespace: "default", Labels: map[string]string{}}

// BenchmarkBuildAfterOneChange10k is one push's translation for one kind of node after one of
// 10,000 ServiceEntries changed: the Shared of the new snapshot and one Build, made from the
// last Shared (incremental) or from nothing (fresh, the translation before it was incremental),
// in the same run, for a sidecar and for a proxyless gRPC client. cpu-ms/op is the process's
// CPU time (user+system, GC included) per push: the machine is shared, wall time is noise.
func BenchmarkBuildAfterOneChange10k(b *testing.B) {
	f := newScaleFleet(b, 10000)
	snaps := []*registry.Snapshot{f.snapshot(b, 1), f.snapshot(b, 2)}
	grpcNode := scaleNode
	grpcNode.Generator = "grpc"
	for _, node := range []struct {
		name string
		n    Node
	}{{name: "sidecar", n: scaleNode}, {name: "grpc", n: grpcNode}} {
		for _, mode := range []struct {
			name string
			from func(prev *Shared, snap *registry.Snapshot) *Shared
		}{
			{name: "fresh", from: func(_ *Shared, snap *registry.Snapshot) *Shared { return NewShared(snap, Options{}) }},
			{name: "incremental", from: func(prev *Shared, snap *registry.Snapshot) *Shared { return NewSharedFrom(prev, snap, Options{}) }},
		} {
			b.Run(node.name+"/"+mode.name, func(b *testing.B) {
				shared := NewShared(snaps[0], Options{})
				if _, err := shared.Build(node.n); err != nil {
					b.Fatal(err)
				}
				cpu0 := cpuTime()
				b.ResetTimer()
				for i := range b.N {
					shared = mode.from(shared, snaps[(i+1)%2])
					if _, err := shared.Build(node.n); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			})
		}
	}
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
