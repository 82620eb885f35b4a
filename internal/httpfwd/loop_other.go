//go:build !linux

package httpfwd

import (
	"net"
	"net/netip"

	"github.com/meshentry/meshentry/internal/evloop"
)

// LoopRoute is what the loop engine asks of the caller; see the Linux file.
type LoopRoute interface {
	Serves(req *RequestHead) bool
	Addr(up *Upstream) (netip.AddrPort, bool)
	Check(remote, local netip.AddrPort) error
	Released()
}

// LoopStats are all zero off Linux.
type LoopStats struct {
	Requests, Handoffs, HeadTimeouts, IdleTimeouts, StreamTimeouts, ConnectTimeouts, ConnectFailures,
	StaleRetries, Interim, BadResponses, PoolReused, PoolFull, PoolIdleClosed, PoolIdleTimeout,
	Mismatches, DrainClosed uint64
}

// LoopServer needs Linux epoll; evloop.New fails elsewhere, so none serves.
type LoopServer struct{}

// NewLoopServer returns a LoopServer that serves nothing.
func (s *Server) NewLoopServer(LoopRoute, int, func(net.Conn)) *LoopServer { return &LoopServer{} }

// Handler is nil off Linux.
func (*LoopServer) Handler(int) evloop.Handler { return nil }

// Stats are zero off Linux.
func (*LoopServer) Stats() LoopStats { return LoopStats{} }
