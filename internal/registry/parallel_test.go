package registry

import (
	"fmt"
	"math/rand/v2"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// dumpServices writes every service of s with all it holds, in order.
func dumpServices(s *Snapshot) string {
	out := ""
	for _, svc := range s.Services {
		out += fmt.Sprintf("%s %s/%s@%s:%d %+v %v %v %v %v %v %v\n", svc.Host, svc.Namespace, svc.Entry, svc.Source.File, svc.Source.Line,
			svc.Ports, svc.Addresses, svc.Resolution, svc.exportAll, svc.exportNone, svc.exportTo, svc.Wildcard)
	}
	return out
}

func TestABuildOnEveryCoreEqualsOneMadeFileByFile(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 9))
	c := &editConfig{files: map[string][]editEntry{}}
	serial := 0
	// Enough files that the build splits them over several goroutines.
	for i := range 8 * minFilesPerWorker {
		f := fmt.Sprintf("f%03d.yaml", i)
		for range 1 + r.IntN(3) {
			serial++
			c.files[f] = append(c.files[f], editEntry{name: fmt.Sprintf("se-%d", serial), ns: "default", spec: randomSpec(r)})
		}
	}
	docs := c.load()
	serialSnap, parallelSnap := Build(docs, 1, withWorkers(1)), Build(docs, 1, withWorkers(4))
	if got, want := dumpServices(parallelSnap)+dumpIndexes(parallelSnap), dumpServices(serialSnap)+dumpIndexes(serialSnap); got != want {
		t.Fatalf("a build on four goroutines differs from one on one\n--- four\n%s--- one\n%s", got, want)
	}
	for step := range 20 {
		what := c.edit(r, &serial)
		next := c.load()
		one, four := BuildFrom(serialSnap, next, uint64(step+2), withWorkers(1)), BuildFrom(parallelSnap, next, uint64(step+2), withWorkers(4))
		if got, want := dumpServices(four)+dumpIndexes(four), dumpServices(one)+dumpIndexes(one); got != want {
			t.Fatalf("step %d %s: a rebuild on four goroutines differs from one on one\n--- four\n%s--- one\n%s", step, what, got, want)
		}
		a1, r1, _ := one.ChangesFrom(serialSnap)
		a4, r4, _ := four.ChangesFrom(parallelSnap)
		if len(a1) != len(a4) || len(r1) != len(r4) {
			t.Fatalf("step %d %s: changes of %d added and %d removed on four goroutines, %d and %d on one", step, what, len(a4), len(r4), len(a1), len(r1))
		}
		serialSnap, parallelSnap = one, four
	}
}

func TestTheServicesOfAnEntryShareNothingThatOneCanGrowIntoAnother(t *testing.T) {
	t.Parallel()
	se := &networking.ServiceEntry{
		Hosts:      []string{"A.example.com.", "b.example.com", "*.c.example.com"},
		Ports:      []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}, {Number: 65535, Name: "tcp", Protocol: "TCP"}},
		Resolution: networking.ServiceEntry_DNS,
	}
	d := config.NewDocument(config.KindServiceEntry, "default", "se", se)
	svcs := servicesOf(d)
	if len(svcs) != 3 {
		t.Fatalf("%d services, want 3", len(svcs))
	}
	for _, svc := range svcs {
		if len(svc.Ports) != 2 || cap(svc.Ports) != len(svc.Ports) {
			t.Errorf("%s: ports of length %d and capacity %d, want 2 and 2", svc.Host, len(svc.Ports), cap(svc.Ports))
		}
		for _, p := range svc.Ports {
			if want := clusterName(p.Number, svc.Host); p.Cluster != want {
				t.Errorf("%s: cluster %q, want %q", svc.Host, p.Cluster, want)
			}
			if len(p.Endpoints) != 1 || cap(p.Endpoints) != 1 || p.Endpoints[0].Address != svc.Host {
				t.Errorf("%s port %d: endpoints %+v (capacity %d), want the host alone", svc.Host, p.Number, p.Endpoints, cap(p.Endpoints))
			}
		}
	}
	// What a later stage appends to one service's lists must not show in its neighbour's.
	first := svcs[0].Ports[0].Endpoints
	_ = append(svcs[0].Ports, Port{Number: 1})
	_ = append(first, Endpoint{Address: "x"})
	if svcs[1].Ports[0].Number != 80 || svcs[0].Ports[1].Endpoints[0].Address != svcs[0].Host {
		t.Fatalf("an append to one service's lists wrote into another's: %+v", svcs[1].Ports)
	}
}

// withWorkers bounds the goroutines that make the services, so that tests can compare a build
// on one with a build on several.
func withWorkers(n int) BuildOption {
	return func(o *buildOptions) { o.workers = n }
}
