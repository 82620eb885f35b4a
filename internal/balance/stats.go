package balance

// Ejections counts the ejections since h was made, each counted when it begins, for the metrics.
func (h *Health) Ejections() uint64 { return h.ejections.Load() }
