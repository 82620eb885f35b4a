package server

// Stats is what the server counts, for the metrics endpoint of `meshentry xds`.
type Stats struct {
	// ConnectedNodes are the nodes with at least one open stream.
	ConnectedNodes int
	// Streams are the open xDS streams that have named their node.
	Streams int
	// Groups are the distinct configurations translated (nodes alike share one).
	Groups int
	// NodesRefused counts nodes turned away at Config.MaxNodes.
	NodesRefused uint64
	// SendsThrottled counts responses that waited for Config.MaxUnackedBytes.
	SendsThrottled uint64
	// UnackedBytes are the response bytes sent and not yet acknowledged.
	UnackedBytes int64
	// UnackedLimit is Config.MaxUnackedBytes in effect.
	UnackedLimit int64
}

// Stats reads the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Groups: len(s.groups), NodesRefused: s.refused}
	s.mu.Unlock()
	s.status.mu.Lock()
	st.ConnectedNodes, st.Streams = len(s.status.open), len(s.status.streams)
	s.status.mu.Unlock()
	s.budget.mu.Lock()
	st.SendsThrottled, st.UnackedBytes, st.UnackedLimit = s.budget.waited, s.budget.used, s.budget.limit
	s.budget.mu.Unlock()
	return st
}
