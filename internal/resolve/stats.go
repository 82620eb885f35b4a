package resolve

import "sync/atomic"

// Stats are the resolver's counters since it was made, for the metrics.
type Stats struct {
	// Queries counts DNS questions sent to a server (one per record type and server tried).
	Queries uint64
	// Failures counts questions that no server answered usefully.
	Failures uint64
	// CacheHits counts lookups of a name answered from the cache without waiting on a query.
	CacheHits uint64
}

// counters are the live counters behind Stats, bumped where each event happens.
type counters struct {
	queries, failures, cacheHits atomic.Uint64
}

// Stats returns the resolver's counters.
func (r *Resolver) Stats() Stats {
	return Stats{
		Queries:   r.stats.queries.Load(),
		Failures:  r.stats.failures.Load(),
		CacheHits: r.stats.cacheHits.Load(),
	}
}
