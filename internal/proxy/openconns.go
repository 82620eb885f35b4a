package proxy

// OpenConnections reports the downstream connections open now across the listeners, for the
// metrics; false when there is no connection cap, since only the cap counts them.
func (p *Proxy) OpenConnections() (int64, bool) {
	if p.connLimit == nil {
		return 0, false
	}
	return p.connLimit.open.Load(), true
}
