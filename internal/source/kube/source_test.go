package kube

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	apinet "istio.io/api/networking/v1alpha3"
	clientnet "istio.io/client-go/pkg/apis/networking/v1"
	"istio.io/client-go/pkg/clientset/versioned/fake"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshentry/meshentry/internal/compile"
	"github.com/meshentry/meshentry/internal/config"
)

// serviceEntry is a STATIC ServiceEntry for host with one endpoint at addr.
func serviceEntry(ns, name, host, addr string) *clientnet.ServiceEntry {
	return &clientnet.ServiceEntry{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
		Spec: apinet.ServiceEntry{
			Hosts:      []string{host},
			Ports:      []*apinet.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
			Resolution: apinet.ServiceEntry_STATIC,
			Location:   apinet.ServiceEntry_MESH_EXTERNAL,
			Endpoints:  []*apinet.WorkloadEntry{{Address: addr}},
		},
	}
}

// started runs a Source over client until the test ends, handing each update to a Merger.
type started struct {
	src    *Source
	merger *Merger
	mu     sync.Mutex
	last   *compile.Result
}

func start(t *testing.T, cfg Config) *started {
	t.Helper()
	cfg.Debounce = 10 * time.Millisecond
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &started{src: src, merger: NewMerger(nil)}
	if err := src.Start(ctx, 0); err != nil {
		t.Fatal(err)
	}
	st.last = st.merger.Kube(src.Documents())
	st.merger.SetPublish(func(r *compile.Result) {
		src.Report(r.Diagnostics)
		st.mu.Lock()
		st.last = r
		st.mu.Unlock()
	})
	var wg sync.WaitGroup
	wg.Go(func() { src.Run(ctx, func(docs []*config.Document) { st.merger.Kube(docs) }) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		src.Stop()
	})
	return st
}

func (st *started) result() *compile.Result {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.last
}

// waitFor polls cond until it holds, failing the test after a deadline wide enough for a
// loaded CI machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func hosts(r *compile.Result) []string {
	var out []string
	for _, s := range r.Snapshot.Services {
		out = append(out, s.Host)
	}
	return out
}

func hasHost(r *compile.Result, host string) bool {
	for _, h := range hosts(r) {
		if h == host {
			return true
		}
	}
	return false
}

func TestSource(t *testing.T) {
	t.Parallel()
	t.Run("the first snapshot holds every object listed before the start", func(t *testing.T) {
		t.Parallel()
		client := fake.NewSimpleClientset(
			serviceEntry("team-a", "one", "one.example.com", "10.0.0.1"),
			serviceEntry("team-b", "two", "two.example.com", "10.0.0.2"))
		st := start(t, Config{Client: client})
		r := st.result()
		if !hasHost(r, "one.example.com") || !hasHost(r, "two.example.com") {
			t.Fatalf("first snapshot has %v, want both hosts", hosts(r))
		}
		if got := r.Snapshot.Documents[0].File; !strings.HasPrefix(got, "kube://team-a/ServiceEntry/one") {
			t.Errorf("document position = %q, want kube://team-a/ServiceEntry/one", got)
		}
	})
	t.Run("a created, then deleted, object comes and goes", func(t *testing.T) {
		t.Parallel()
		client := fake.NewSimpleClientset()
		st := start(t, Config{Client: client})
		ctx := context.Background()
		// The fake's watch starts after its list: poll the create until the informer sees it.
		if _, err := client.NetworkingV1().ServiceEntries("ns").Create(ctx, serviceEntry("ns", "se", "new.example.com", "10.0.0.3"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the created host is served", func() bool { return hasHost(st.result(), "new.example.com") })
		if err := client.NetworkingV1().ServiceEntries("ns").Delete(ctx, "se", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the deleted host is gone", func() bool { return !hasHost(st.result(), "new.example.com") })
	})
	t.Run("a namespace filter leaves other namespaces out", func(t *testing.T) {
		t.Parallel()
		client := fake.NewSimpleClientset(
			serviceEntry("team-a", "one", "one.example.com", "10.0.0.1"),
			serviceEntry("team-b", "two", "two.example.com", "10.0.0.2"))
		st := start(t, Config{Client: client, Namespace: "team-b"})
		if got := hosts(st.result()); len(got) != 1 || got[0] != "two.example.com" {
			t.Fatalf("hosts = %v, want only two.example.com", got)
		}
	})
	t.Run("an invalid object is left out alone and its findings reach its status", func(t *testing.T) {
		t.Parallel()
		bad := serviceEntry("ns", "bad", "bad.example.com", "not-an-ip")
		client := fake.NewSimpleClientset(bad, serviceEntry("ns", "good", "good.example.com", "10.0.0.4"))
		st := start(t, Config{Client: client, WriteStatus: true})
		r := st.result()
		if hasHost(r, "bad.example.com") || !hasHost(r, "good.example.com") {
			t.Fatalf("hosts = %v, want good.example.com only", hosts(r))
		}
		st.src.Report(r.Diagnostics)
		var got *clientnet.ServiceEntry
		waitFor(t, "the bad object's status has a message", func() bool {
			var err error
			got, err = client.NetworkingV1().ServiceEntries("ns").Get(context.Background(), "bad", metav1.GetOptions{})
			return err == nil && len(got.Status.GetValidationMessages()) > 0
		})
		m := got.Status.GetValidationMessages()[0]
		if m.GetLevel().String() != "ERROR" || !strings.HasPrefix(m.GetType().GetCode(), "ME") || m.GetType().GetName() == "" {
			t.Errorf("message = %v, want an ERROR with an ME code and a description", m)
		}
		if got.Status.GetObservedGeneration() != 1 {
			t.Errorf("observedGeneration = %d, want 1", got.Status.GetObservedGeneration())
		}
		// Once the informer has the written status back, the same findings write nothing more.
		key := Position("ns", "ServiceEntry", "bad")
		waitFor(t, "the informer sees the written status", func() bool { return len(st.src.statuses()[key].messages) > 0 })
		st.src.Report(st.result().Diagnostics)
		if stats := st.src.StatusStats(); stats.Pending != 0 || stats.Written != 1 {
			t.Errorf("after reporting the same findings again: %+v, want 1 written and none pending", stats)
		}
		good, _ := client.NetworkingV1().ServiceEntries("ns").Get(context.Background(), "good", metav1.GetOptions{})
		if len(good.Status.GetValidationMessages()) != 0 {
			t.Errorf("the valid object got messages %v", good.Status.GetValidationMessages())
		}
	})
}
