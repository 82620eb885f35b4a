package server

import (
	"context"
	"sort"
	"sync"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statusv3 "github.com/envoyproxy/go-control-plane/envoy/service/status/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshentry/meshentry/internal/xds/mcp"
)

// typeState is what one node said last about one resource type.
type typeState struct {
	sent, acked string
	nack        string // the error detail of the last NACK, "" after an ACK
}

// tracker follows, per node and type, what was sent and what the client answered.
type tracker struct {
	mu      sync.Mutex
	byNode  map[string]map[string]*typeState
	open    map[string]int   // streams per node
	streams map[int64]string // stream id to node id
}

func newTracker() *tracker {
	return &tracker{byNode: map[string]map[string]*typeState{}, open: map[string]int{}, streams: map[int64]string{}}
}

func (t *tracker) state(node, typ string) *typeState {
	m := t.byNode[node]
	if m == nil {
		m = map[string]*typeState{}
		t.byNode[node] = m
	}
	st := m[typ]
	if st == nil {
		st = &typeState{}
		m[typ] = st
	}
	return st
}

// request notes an ACK (a request carrying a nonce and no error) or a NACK (error detail).
func (t *tracker) request(stream int64, node *core.Node, typ, version, nonce, nack string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id := node.GetId()
	if id == "" {
		id = t.streams[stream]
	}
	if _, ok := t.streams[stream]; !ok && id != "" {
		t.streams[stream] = id
		t.open[id]++
	}
	if id == "" || nonce == "" {
		return
	}
	st := t.state(id, typ)
	if nack != "" {
		st.nack = nack
		return
	}
	st.acked, st.nack = version, ""
}

func (t *tracker) response(stream int64, typ, version string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id := t.streams[stream]; id != "" {
		t.state(id, typ).sent = version
	}
}

// closed ends a stream and returns its node and whether the node has no stream left.
func (t *tracker) closed(stream int64) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.streams[stream]
	if !ok {
		return "", false
	}
	delete(t.streams, stream)
	t.open[id]--
	if t.open[id] <= 0 {
		delete(t.open, id)
		delete(t.byNode, id)
		return id, true
	}
	return id, false
}

func (t *tracker) openStreams(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open[id]
}

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, r *discovery.DiscoveryRequest) error {
			s.status.request(id, r.Node, r.TypeUrl, r.VersionInfo, r.ResponseNonce, r.GetErrorDetail().GetMessage())
			if r.Node != nil {
				return s.join(r.Node)
			}
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discovery.DiscoveryRequest, r *discovery.DiscoveryResponse) {
			s.status.response(id, r.TypeUrl, r.VersionInfo)
		},
		StreamDeltaRequestFunc: func(id int64, r *discovery.DeltaDiscoveryRequest) error {
			id = deltaStreamID(id)
			s.status.request(id, r.Node, r.TypeUrl, s.sentVersion(id, r.TypeUrl), r.ResponseNonce, r.GetErrorDetail().GetMessage())
			if r.Node != nil {
				return s.join(r.Node)
			}
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
			s.status.response(deltaStreamID(id), r.TypeUrl, r.SystemVersionInfo)
		},
		StreamClosedFunc:      func(id int64, _ *core.Node) { s.closed(id) },
		DeltaStreamClosedFunc: func(id int64, _ *core.Node) { s.closed(deltaStreamID(id)) },
	}
}

// deltaStreamID makes a Delta stream's id distinct from State of the World ones: go-control-plane
// numbers the streams of each protocol from 1 on its own, so a Delta stream and a SotW stream of
// the same node could share an id, and the close of one then forgot the node the other serves.
func deltaStreamID(id int64) int64 { return -id }

// sentVersion is, for Delta (whose requests carry no version), what an ACK acknowledges.
func (s *Server) sentVersion(stream int64, typ string) string {
	s.status.mu.Lock()
	defer s.status.mu.Unlock()
	if id := s.status.streams[stream]; id != "" {
		return s.status.state(id, typ).sent
	}
	return ""
}

func (s *Server) closed(stream int64) {
	if id, last := s.status.closed(stream); last {
		s.forget(id)
	}
}

// ProxyStatus is one connected node's sync state per resource type.
type ProxyStatus struct {
	ID    string
	Name  string
	Types []TypeStatus
}

// TypeStatus is SYNCED (the client acknowledged the current version), STALE (it has not yet)
// or NACK (it rejected the last push, with the client's message).
type TypeStatus struct {
	TypeURL string
	Status  string
	Version string
	Error   string
}

// Status lists the connected nodes, by id.
func (s *Server) Status() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status.mu.Lock()
	defer s.status.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.nodes))
	for id, n := range s.nodes {
		if s.status.open[id] == 0 {
			continue
		}
		ps := ProxyStatus{ID: id, Name: n.node.Name + "." + n.node.Namespace}
		g := s.groups[n.key]
		for typ, st := range s.status.byNode[id] {
			ts := TypeStatus{TypeURL: typ, Version: st.acked, Status: "STALE"}
			switch {
			case st.nack != "":
				ts.Status, ts.Error = "NACK", st.nack
			case s.cfg.MCP != nil && mcp.Serves(typ):
				if s.cfg.MCP.Version(typ) == st.acked {
					ts.Status = "SYNCED"
				}
			case g != nil && g.versions[typ] == st.acked, g != nil && g.versions[typ] == "" && st.acked == "empty":
				ts.Status = "SYNCED"
			}
			ps.Types = append(ps.Types, ts)
		}
		sort.Slice(ps.Types, func(i, j int) bool { return ps.Types[i].TypeURL < ps.Types[j].TypeURL })
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// csds serves Status as Envoy's Client Status Discovery Service, which istioctl-like tools read.
type csds struct {
	statusv3.UnimplementedClientStatusDiscoveryServiceServer
	s *Server
}

// FetchClientStatus answers with every connected node's per-type state.
func (c *csds) FetchClientStatus(_ context.Context, _ *statusv3.ClientStatusRequest) (*statusv3.ClientStatusResponse, error) {
	resp := &statusv3.ClientStatusResponse{}
	for _, ps := range c.s.Status() {
		cc := &statusv3.ClientConfig{Node: &core.Node{Id: ps.ID, Cluster: ps.Name}}
		for _, ts := range ps.Types {
			g := &statusv3.ClientConfig_GenericXdsConfig{TypeUrl: ts.TypeURL, VersionInfo: ts.Version}
			switch ts.Status {
			case "SYNCED":
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_SYNCED, adminv3.ClientResourceStatus_ACKED
			case "NACK":
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_ERROR, adminv3.ClientResourceStatus_NACKED
				g.ErrorState = &adminv3.UpdateFailureState{Details: ts.Error}
			default:
				g.ConfigStatus, g.ClientStatus = statusv3.ConfigStatus_STALE, adminv3.ClientResourceStatus_REQUESTED
			}
			cc.GenericXdsConfigs = append(cc.GenericXdsConfigs, g)
		}
		resp.Config = append(resp.Config, cc)
	}
	return resp, nil
}

// StreamClientStatus is not offered: proxy-status asks once.
func (c *csds) StreamClientStatus(statusv3.ClientStatusDiscoveryService_StreamClientStatusServer) error {
	return status.Error(codes.Unimplemented, "use FetchClientStatus")
}
