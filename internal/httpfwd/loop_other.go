//go:build !linux

package httpfwd

import (
	"net"

	"github.com/meshentry/meshentry/internal/evloop"
)

// LoopServer needs Linux epoll; evloop.New fails elsewhere, so none serves.
type LoopServer struct{}

// NewLoopServer returns a LoopServer that serves nothing.
func (s *Server) NewLoopServer(LoopRoute, int, func(net.Conn)) *LoopServer { return &LoopServer{} }

// Handler is nil off Linux.
func (*LoopServer) Handler(int) evloop.Handler { return nil }

// Stats are zero off Linux.
func (*LoopServer) Stats() LoopStats { return LoopStats{} }
