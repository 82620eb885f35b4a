package registry

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

func TestBuildFromReusesTheServicesOfUnchangedSpecsOnly(t *testing.T) {
	t.Parallel()
	docs := syntheticEntries(8)
	prev := Build(docs, 1)
	next := append([]*config.Document(nil), docs...)
	// A copy of one document under another name must not take the services named after the first.
	renamed := *docs[3]
	renamed.Name = "renamed"
	next[3] = &renamed
	snap := BuildFrom(prev, next, 2)
	fresh := Build(next, 2)
	if len(snap.Services) != len(fresh.Services) {
		t.Fatalf("%d services, a fresh build has %d", len(snap.Services), len(fresh.Services))
	}
	for i, svc := range snap.Services {
		want := fresh.Services[i]
		if got := fmt.Sprintf("%s %s/%s %v %v %v", svc.Host, svc.Namespace, svc.Entry, svc.Ports, svc.Addresses, svc.exportAll); got != fmt.Sprintf("%s %s/%s %v %v %v", want.Host, want.Namespace, want.Entry, want.Ports, want.Addresses, want.exportAll) {
			t.Fatalf("service %d: %s, a fresh build has %s/%s", i, got, want.Namespace, want.Entry)
		}
		shared := false
		for _, p := range prev.Services {
			shared = shared || p == svc
		}
		if wantShared := svc.Entry != "renamed"; shared != wantShared {
			t.Errorf("service %s of %s: shared with the previous snapshot = %v, want %v", svc.Host, svc.Entry, shared, wantShared)
		}
	}
	q := Query{Namespace: "default", Host: "svc1.a.example.com", Port: 80}
	got, want := snap.Match(q, false), fresh.Match(q, false)
	if got.Service == nil || !reflect.DeepEqual(got.Service.Ports, want.Service.Ports) || got.Service.Host != want.Service.Host {
		t.Fatalf("a lookup found %+v, a fresh build %+v", got.Service, want.Service)
	}
}
