package kube

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"istio.io/client-go/pkg/clientset/versioned/fake"

	"github.com/meshentry/meshentry/internal/diag"
)

// TestAFindingReportedWhileItsWriteIsOnItsWayIsNotWrittenTwice holds the status patch in the
// API client until the same findings are reported again: the second report must not queue the
// patch that is already being sent.
func TestAFindingReportedWhileItsWriteIsOnItsWayIsNotWrittenTwice(t *testing.T) {
	t.Parallel()
	client := fake.NewSimpleClientset(serviceEntry("ns", "bad", "bad.example.com", "not-an-ip"))
	inPatch, release := make(chan struct{}, 4), make(chan struct{})
	client.PrependReactor("patch", "serviceentries", func(k8stesting.Action) (bool, runtime.Object, error) {
		inPatch <- struct{}{}
		<-release
		return false, nil, nil // on to the fake's own patch
	})
	w := newStatusWriter(client, 100, 100, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	key := Position("ns", "ServiceEntry", "bad")
	current := map[string]objectStatus{key: {kind: "ServiceEntry", namespace: "ns", name: "bad", generation: 1}}
	ds := []diag.Diagnostic{{Level: diag.Error, Code: "ME1001", File: key, Message: "not an IP address"}}
	w.report(current, ds)
	select {
	case <-inPatch:
	case <-time.After(10 * time.Second):
		t.Fatal("the status patch was never sent")
	}
	w.report(current, ds) // the informer has not seen the written status yet
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for w.stats().Written < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a second write, if one was queued
	if st := w.stats(); st.Written != 1 || st.Pending != 0 || len(inPatch) != 0 {
		t.Fatalf("stats %+v with %d more patches sent, want the patch written once", st, len(inPatch))
	}
}
