package resolve

import "strings"

// Retain drops the cached answers of the names keep rejects, so that a configuration reload
// forgets the names of endpoints that are gone while those that stay keep their answers, failure
// streaks and last good addresses. keep is given names in lower case without a trailing dot.
// Names being looked up right now are kept: their lookup is about to store an answer anyway.
// It returns how many names it dropped.
func (r *Resolver) Retain(keep func(name string) bool) int {
	// flightMu before mu, as in sweep and entryFor.
	r.flightMu.Lock()
	defer r.flightMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	dropped := 0
	for k := range r.entries.Range {
		key := k.(string)
		if _, busy := r.flights[key]; busy || keep(key) {
			continue
		}
		r.entries.Delete(key)
		r.count--
		dropped++
	}
	return dropped
}

// CacheKey is the form Retain gives names in: lower case, without the trailing dot.
func CacheKey(name string) string { return strings.TrimSuffix(strings.ToLower(name), ".") }
