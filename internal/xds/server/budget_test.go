package server

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestSendBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		limit   int64
		held    int64 // bytes another stream holds first
		n       int64
		holding bool // the asking stream already holds some
		waits   bool
	}{
		{name: "a send that fits goes at once", limit: 100, held: 40, n: 60, waits: false},
		{name: "a stream holding nothing waits for bytes that do not fit", limit: 100, held: 40, n: 61, waits: true},
		{name: "a stream already holding bytes goes over rather than wait", limit: 100, held: 40, n: 61, holding: true, waits: false},
		{name: "a response larger than the budget goes when nothing is in flight", limit: 100, n: 500, waits: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newSendBudget(tt.limit)
			if err := b.acquire(context.Background(), tt.held, false); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- b.acquire(context.Background(), tt.n, tt.holding) }()
			select {
			case err := <-done:
				if err != nil || tt.waits {
					t.Fatalf("acquire returned %v at once, want it to wait: %v", err, tt.waits)
				}
				return
			case <-time.After(200 * time.Millisecond):
				if !tt.waits {
					t.Fatal("acquire waited, want it to go at once")
				}
			}
			b.release(tt.held)
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("acquire still waits after the other stream's bytes were released")
			}
			if b.waited != 1 {
				t.Errorf("waited = %d, want 1", b.waited)
			}
		})
	}
}

// TestTinyBudgetStillPushesEverything connects clients to a server whose budget is smaller
// than one response: every client still gets its whole first push, one at a time, and the
// waits are counted.
func TestTinyBudgetStillPushesEverything(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := New(ctx, Config{MaxUnackedBytes: 100})
	if err := s.Update(scaleSnapshot(t, t.TempDir(), 50, 0, 1)); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		c := newDeltaClient(ctx, t, cc, i)
		wg.Go(func() {
			seen := map[string]int{}
			deadline := time.After(10 * time.Second)
			for seen[resource.ClusterType] < 50 || seen[resource.EndpointType] < 50 {
				select {
				case p := <-c.got:
					seen[p.typ] += p.n
				case <-deadline:
					t.Errorf("client %d: first push incomplete: %v", i, seen)
					return
				}
			}
		})
	}
	wg.Wait()
	if s.Throttled() == 0 {
		t.Error("no send waited for a budget smaller than one response")
	}
}
