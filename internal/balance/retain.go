package balance

// Retain drops the records of every key for which keep returns false, such as endpoints that left
// the configuration, and returns how many it dropped. The records of kept keys, failure streaks
// and ejections included, are untouched. Only keys no Picker in use was built with may be dropped:
// such a Picker would go on reading the dropped record.
func (h *Health) Retain(keep func(key string) bool) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropped := 0
	for k, v := range h.states.Range {
		if keep(k.(string)) {
			continue
		}
		h.dropLocked(k, v.(*state))
		dropped++
	}
	return dropped
}

// Len returns the number of endpoints and addresses tracked.
func (h *Health) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

// Evicted returns how many records were dropped, or never made, because MaxEntries were tracked.
func (h *Health) Evicted() uint64 { return h.evicted.Load() }

// evictHealthyLocked makes room in a full map by dropping an eighth of it, healthy records only
// (no failure streak, not ejected) that no Picker holds, whose loss changes no decision; it
// reports whether any went.
func (h *Health) evictHealthyLocked() bool {
	want := max(1, h.max/8)
	dropped := 0
	for k, v := range h.states.Range {
		s := v.(*state)
		if s.pinned.Load() || s.failures.Load() != 0 || s.errs5xx.Load() != 0 || s.until.Load() != 0 {
			continue
		}
		h.dropLocked(k, s)
		h.evicted.Add(1)
		if dropped++; dropped >= want {
			break
		}
	}
	return dropped > 0
}

// dropLocked removes one record, keeping the ejected count exact; h.mu must be held.
func (h *Health) dropLocked(key any, s *state) {
	h.states.Delete(key)
	h.count--
	if u := s.until.Load(); u != 0 {
		h.expire(s, u)
	}
}
