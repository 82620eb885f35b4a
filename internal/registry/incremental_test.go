package registry

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
)

// editEntry is one ServiceEntry of a simulated config file; spec stays the same pointer while
// the entry is not edited, as the decode cache hands out for an unchanged file.
type editEntry struct {
	name, ns string
	created  time.Time
	spec     *networking.ServiceEntry
}

// editConfig is a set of files of entries, loaded as config.Load would: files in name order,
// documents numbered in load order.
type editConfig struct {
	files map[string][]editEntry
	// made are the documents the last load made of each file, from the entries in madeFrom:
	// an unchanged file gives the very same documents, as the decode cache does, or copies
	// numbered anew when a file before it gained or lost an entry.
	made     map[string][]*config.Document
	madeFrom map[string][]editEntry
}

func (c *editConfig) load() []*config.Document {
	names := make([]string, 0, len(c.files))
	for f := range c.files {
		names = append(names, f)
	}
	slices.Sort(names)
	if c.made == nil {
		c.made, c.madeFrom = map[string][]*config.Document{}, map[string][]editEntry{}
	}
	var docs []*config.Document
	for _, f := range names {
		made := c.made[f]
		if !slices.Equal(c.madeFrom[f], c.files[f]) {
			made = nil
		}
		if len(made) > 0 && made[0].Order != len(docs) {
			copies := make([]*config.Document, len(made))
			for j, d := range made {
				cp := *d
				cp.Order = len(docs) + j
				copies[j] = &cp
			}
			made = copies
		}
		if made == nil {
			for j, e := range c.files[f] {
				d := config.NewDocument(config.KindServiceEntry, e.ns, e.name, e.spec)
				d.File, d.Line, d.Order, d.Created = f, 1+j*12, len(docs)+j, e.created
				made = append(made, d)
			}
		}
		c.made[f], c.madeFrom[f] = made, slices.Clone(c.files[f])
		docs = append(docs, made...)
	}
	return docs
}

// randomSpec draws hosts, ports and addresses from small pools, so that entries share keys.
func randomSpec(r *rand.Rand) *networking.ServiceEntry {
	se := &networking.ServiceEntry{Resolution: networking.ServiceEntry_STATIC}
	for range 1 + r.IntN(3) {
		h := fmt.Sprintf("h%d.example.com", r.IntN(12))
		if r.IntN(4) == 0 {
			h = fmt.Sprintf("*.w%d.example.com", r.IntN(4))
		}
		if !slices.Contains(se.Hosts, h) {
			se.Hosts = append(se.Hosts, h)
		}
	}
	for i, n := range []uint32{80, 443, 5432} {
		if r.IntN(2) == 0 || (i == 2 && len(se.Ports) == 0) {
			se.Ports = append(se.Ports, &networking.ServicePort{Number: n, Name: fmt.Sprintf("p%d", n), Protocol: []string{"HTTP", "TLS", "TCP"}[i]})
		}
	}
	pool := []string{"10.0.0.1", "10.0.0.2", "10.1.0.0/16", "10.1.2.0/24", "10.1.3.0/24", "fd00::1", "fd00::/64"}
	for range r.IntN(3) {
		if a := pool[r.IntN(len(pool))]; !slices.Contains(se.Addresses, a) {
			se.Addresses = append(se.Addresses, a)
		}
	}
	se.Endpoints = []*networking.WorkloadEntry{{Address: fmt.Sprintf("127.0.0.%d", 1+r.IntN(9))}}
	return se
}

// edit makes one random change: an entry added, removed, edited, renamed, moved in time, or a
// file added or removed.
func (c *editConfig) edit(r *rand.Rand, serial *int) string {
	*serial++
	newEntry := func() editEntry {
		e := editEntry{name: fmt.Sprintf("se-%d", *serial), ns: []string{"default", "team"}[r.IntN(2)], spec: randomSpec(r)}
		if r.IntN(3) == 0 {
			e.created = time.Date(2024, 1, 1+r.IntN(3), 0, 0, 0, 0, time.UTC)
		}
		return e
	}
	files := make([]string, 0, len(c.files))
	for f := range c.files {
		files = append(files, f)
	}
	slices.Sort(files)
	f := files[r.IntN(len(files))]
	list := slices.Clone(c.files[f])
	switch k := r.IntN(7); {
	case k == 0 || len(list) == 0:
		c.files[f] = slices.Insert(list, r.IntN(len(list)+1), newEntry())
		return "adds an entry to " + f
	case k == 1 && len(list) > 0:
		i := r.IntN(len(list))
		c.files[f] = slices.Delete(list, i, i+1)
		return "removes an entry from " + f
	case k == 2:
		list[r.IntN(len(list))].spec = randomSpec(r)
		c.files[f] = list
		return "edits an entry of " + f
	case k == 3:
		list[r.IntN(len(list))].name = fmt.Sprintf("renamed-%d", *serial)
		c.files[f] = list
		return "renames an entry of " + f
	case k == 4:
		// A new time is a new decode of the file, so a new spec of the same content.
		i := r.IntN(len(list))
		list[i].created = time.Date(2023, 6, 1+r.IntN(2), 0, 0, 0, 0, time.UTC)
		list[i].spec = proto.Clone(list[i].spec).(*networking.ServiceEntry)
		c.files[f] = list
		return "dates an entry of " + f
	case k == 5:
		name := fmt.Sprintf("f%02d.yaml", r.IntN(20))
		if _, ok := c.files[name]; !ok {
			c.files[name] = []editEntry{newEntry(), newEntry()}
		}
		return "adds file " + name
	case len(c.files) > 1:
		delete(c.files, f)
		return "removes file " + f
	}
	return "changes nothing"
}

// dumpIndexes writes every index of s in a canonical form, with each list in its order.
func dumpIndexes(s *Snapshot) string {
	var b strings.Builder
	id := func(list []*Service) string {
		parts := make([]string, len(list))
		for i, svc := range list {
			parts[i] = fmt.Sprintf("%s/%s@%s:%d#%s", svc.Namespace, svc.Entry, svc.Source.File, svc.Source.Line, svc.Host)
		}
		return strings.Join(parts, " ")
	}
	section := func(name string, keys []string, get func(string) []*Service) {
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "%s[%s] = %s\n", name, k, id(get(k)))
		}
	}
	fmt.Fprintf(&b, "services = %s\n", id(s.Services))
	other := map[string][]*Service{}
	for k, v := range s.exact.all {
		other["exact "+k] = v
	}
	for k, v := range s.wildcard.all {
		other["wildcard "+k] = v
	}
	for k, v := range s.ips.all {
		other["ip "+k.String()] = v
	}
	for k, v := range s.byPort {
		other[fmt.Sprintf("port %d", k)] = v.flat()
	}
	for k, v := range s.portOnly {
		other[fmt.Sprintf("portOnly %d", k)] = v.flat()
	}
	for i, bk := range s.cidrs {
		if i > 0 && s.cidrs[i-1].bits < bk.bits {
			fmt.Fprintf(&b, "cidr buckets out of order at %d\n", i)
		}
		for k, v := range bk.nets {
			other[fmt.Sprintf("cidr /%d v4=%v %s", bk.bits, bk.is4, k)] = v
		}
	}
	section("", slices.Collect(maps.Keys(other)), func(k string) []*Service { return other[k] })
	return b.String()
}

func TestBuildFromAfterRandomEditsIndexesAsAFreshBuildDoes(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprintf("with seed %d", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 7))
			c := &editConfig{files: map[string][]editEntry{}}
			serial := 0
			for i := range 6 {
				f := fmt.Sprintf("f%02d.yaml", i*3)
				for range 3 {
					serial++
					c.files[f] = append(c.files[f], editEntry{name: fmt.Sprintf("se-%d", serial), ns: "default", spec: randomSpec(r)})
				}
			}
			prev := Build(c.load(), 1)
			for step := range 60 {
				what := c.edit(r, &serial)
				docs := c.load()
				snap := BuildFrom(prev, docs, uint64(step+2))
				fresh := Build(docs, uint64(step+2))
				if got, want := dumpIndexes(snap), dumpIndexes(fresh); got != want {
					t.Fatalf("step %d %s: the incremental build differs from a fresh one\n--- incremental\n%s--- fresh\n%s", step, what, got, want)
				}
				added, removed, ok := snap.ChangesFrom(prev)
				if !ok {
					t.Fatalf("step %d %s: no changes recorded against the snapshot it was built from", step, what)
				}
				checkChanges(t, prev, snap, added, removed)
				prev = snap
			}
		})
	}
}

// checkChanges checks added and removed against the two snapshots' services.
func checkChanges(t *testing.T, prev, next *Snapshot, added, removed []*Service) {
	t.Helper()
	in := func(list []*Service) map[*Service]bool {
		m := map[*Service]bool{}
		for _, s := range list {
			m[s] = true
		}
		return m
	}
	before, after, add, rem := in(prev.Services), in(next.Services), in(added), in(removed)
	for s := range after {
		if add[s] == before[s] {
			t.Fatalf("service %s: in the previous snapshot %v, reported added %v", s.Host, before[s], add[s])
		}
	}
	for s := range before {
		if rem[s] == after[s] {
			t.Fatalf("service %s: still there %v, reported removed %v", s.Host, after[s], rem[s])
		}
	}
	if len(add) != len(added) || len(rem) != len(removed) || len(added)+len(before) != len(after)+len(removed) {
		t.Fatalf("%d added and %d removed from %d services make %d", len(added), len(removed), len(before), len(after))
	}
}

func TestBuildFromFoldsAGrownOverlayAndStillIndexesAsAFreshBuildDoes(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 5))
	c := &editConfig{files: map[string][]editEntry{}}
	spec := func(i int) *networking.ServiceEntry {
		se := randomSpec(r)
		se.Hosts = []string{fmt.Sprintf("u%d.example.com", i)}
		return se
	}
	for f := range 50 {
		for j := range 100 {
			c.files[fmt.Sprintf("f%02d.yaml", f)] = append(c.files[fmt.Sprintf("f%02d.yaml", f)], editEntry{name: fmt.Sprintf("se-%d-%d", f, j), ns: "default", spec: spec(f*100 + j)})
		}
	}
	prev := Build(c.load(), 1)
	folded := false
	for step := range 8 {
		// Three files of new hosts each time: 600 keys patched, past the overlay's bound in three.
		for k := range 3 {
			f := fmt.Sprintf("f%02d.yaml", (step*3+k)%50)
			list := slices.Clone(c.files[f])
			for j := range list {
				list[j].spec = spec(10_000*(step+1) + k*100 + j)
			}
			c.files[f] = list
		}
		docs := c.load()
		snap := BuildFrom(prev, docs, uint64(step+2))
		if got, want := dumpIndexes(snap), dumpIndexes(Build(docs, 0)); got != want {
			t.Fatalf("step %d: the incremental build differs from a fresh one", step)
		}
		folded = folded || (len(prev.exact.over) > 0 && len(snap.exact.over) == 0)
		prev = snap
	}
	if !folded {
		t.Fatal("the overlay was never folded into its base; the test does not reach that path")
	}
}

func TestBuildFromFindsWhatGoesFromLongListsAsAFreshBuildDoes(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 1))
	c := &editConfig{files: map[string][]editEntry{}}
	// Long lists per port number, searched for what goes; some entries carry creation times,
	// so that precedence is not load order.
	entry := func(f, j, gen int) editEntry {
		se := randomSpec(r)
		se.Hosts = []string{fmt.Sprintf("l%d-%d-%d.example.com", f, j, gen)}
		e := editEntry{name: fmt.Sprintf("se-%d-%d", f, j), ns: "default", spec: se}
		if r.IntN(4) == 0 {
			e.created = time.Date(2024, 1, 1+r.IntN(5), 0, 0, 0, 0, time.UTC)
		}
		return e
	}
	for f := range 40 {
		for j := range 50 {
			name := fmt.Sprintf("f%02d.yaml", f)
			c.files[name] = append(c.files[name], entry(f, j, 0))
		}
	}
	prev := Build(c.load(), 1)
	for step := range 10 {
		f := r.IntN(40)
		name := fmt.Sprintf("f%02d.yaml", f)
		list := slices.Clone(c.files[name])
		for j := range list {
			if r.IntN(2) == 0 {
				list[j] = entry(f, j, step+1)
			}
		}
		c.files[name] = list
		docs := c.load()
		snap := BuildFrom(prev, docs, uint64(step+2))
		if got, want := dumpIndexes(snap), dumpIndexes(Build(docs, 0)); got != want {
			t.Fatalf("step %d: the incremental build differs from a fresh one", step)
		}
		if snap.exact.over == nil {
			t.Fatalf("step %d: the indexes were built whole; the test does not reach the patch", step)
		}
		prev = snap
	}
}
