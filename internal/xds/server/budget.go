package server

import (
	"context"
	"strconv"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/protobuf/proto"
)

// DefaultMaxUnackedBytes is the default of Config.MaxUnackedBytes.
const DefaultMaxUnackedBytes = 32 << 20

// sendBudget bounds the bytes of responses sent and not yet acknowledged, over all streams.
// gRPC's Send returns once a message is queued, not written, so a first push of 10,000
// services to a hundred clients would otherwise hold a hundred encoded copies of the whole
// config in the transport at once (and as many in the clients). A client's ACK (any request
// carrying a response's nonce) says the response arrived, and releases it.
type sendBudget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	changed chan struct{}
	// waited counts sends that waited for the budget.
	waited uint64
}

func newSendBudget(limit int64) *sendBudget {
	return &sendBudget{limit: limit, changed: make(chan struct{})}
}

// acquire takes n bytes. A stream that holds nothing waits until they fit (or nothing else is
// in flight, for a response larger than the budget); a stream already holding some never
// waits, since its own ACKs may be queued behind the send it is making, so that waiting could
// deadlock the budget. The bound is therefore the limit plus what streams add on top of a
// held response, at most one response per type each.
func (b *sendBudget) acquire(ctx context.Context, n int64, holding bool) error {
	b.mu.Lock()
	counted := false
	for !holding && b.used > 0 && b.used+n > b.limit {
		if !counted {
			b.waited++
			counted = true
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		b.mu.Lock()
	}
	b.used += n
	b.mu.Unlock()
	return nil
}

func (b *sendBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// Throttled counts responses that waited for the unacknowledged-bytes budget
// (Config.MaxUnackedBytes).
func (s *Server) Throttled() uint64 {
	s.budget.mu.Lock()
	defer s.budget.mu.Unlock()
	return s.budget.waited
}

// inflight is one stream's sent, unacknowledged responses, by nonce in the order sent.
type inflight struct {
	b       *sendBudget
	mu      sync.Mutex
	pending []sent
	held    int64
}

type sent struct {
	nonce int64
	n     int64
}

func (f *inflight) send(ctx context.Context, nonce string, m proto.Message) error {
	n := int64(proto.Size(m))
	f.mu.Lock()
	holding := f.held > 0
	f.mu.Unlock()
	if err := f.b.acquire(ctx, n, holding); err != nil {
		return err
	}
	id, _ := strconv.ParseInt(nonce, 10, 64)
	f.mu.Lock()
	f.pending = append(f.pending, sent{nonce: id, n: n})
	f.held += n
	f.mu.Unlock()
	return nil
}

// acked releases every response up to the one the request names: the stream is ordered, so
// the client has received those too.
func (f *inflight) acked(nonce string) {
	if nonce == "" {
		return
	}
	id, err := strconv.ParseInt(nonce, 10, 64)
	if err != nil {
		return
	}
	f.mu.Lock()
	var n int64
	i := 0
	for ; i < len(f.pending) && f.pending[i].nonce <= id; i++ {
		n += f.pending[i].n
	}
	f.pending = f.pending[i:]
	f.held -= n
	f.mu.Unlock()
	f.b.release(n)
}

// close releases what the stream still holds.
func (f *inflight) close() {
	f.mu.Lock()
	n := f.held
	f.pending, f.held = nil, 0
	f.mu.Unlock()
	f.b.release(n)
}

// budgetedADS is go-control-plane's ADS server with every stream's sends under the budget.
type budgetedADS struct {
	serverv3.Server
	b *sendBudget
}

// StreamAggregatedResources serves a State of the World stream under the budget.
func (a budgetedADS) StreamAggregatedResources(st discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	f := &inflight{b: a.b}
	defer f.close()
	return a.Server.StreamAggregatedResources(&sotwStream{AggregatedDiscoveryService_StreamAggregatedResourcesServer: st, f: f})
}

// DeltaAggregatedResources serves a Delta stream under the budget.
func (a budgetedADS) DeltaAggregatedResources(st discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	f := &inflight{b: a.b}
	defer f.close()
	return a.Server.DeltaAggregatedResources(&deltaStreamServer{AggregatedDiscoveryService_DeltaAggregatedResourcesServer: st, f: f})
}

type sotwStream struct {
	discovery.AggregatedDiscoveryService_StreamAggregatedResourcesServer
	f *inflight
}

func (s *sotwStream) Send(r *discovery.DiscoveryResponse) error {
	if err := s.f.send(s.Context(), r.GetNonce(), r); err != nil {
		return err
	}
	return s.AggregatedDiscoveryService_StreamAggregatedResourcesServer.Send(r)
}

func (s *sotwStream) Recv() (*discovery.DiscoveryRequest, error) {
	r, err := s.AggregatedDiscoveryService_StreamAggregatedResourcesServer.Recv()
	if err == nil {
		s.f.acked(r.GetResponseNonce())
	}
	return r, err
}

type deltaStreamServer struct {
	discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	f *inflight
}

func (s *deltaStreamServer) Send(r *discovery.DeltaDiscoveryResponse) error {
	if err := s.f.send(s.Context(), r.GetNonce(), r); err != nil {
		return err
	}
	return s.AggregatedDiscoveryService_DeltaAggregatedResourcesServer.Send(r)
}

func (s *deltaStreamServer) Recv() (*discovery.DeltaDiscoveryRequest, error) {
	r, err := s.AggregatedDiscoveryService_DeltaAggregatedResourcesServer.Recv()
	if err == nil {
		s.f.acked(r.GetResponseNonce())
	}
	return r, err
}
