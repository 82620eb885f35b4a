package evloop

// connHeap is a binary min-heap of Conns by deadline: unlike the pairs', the deadlines of Conns
// differ (a head timeout, a keep-alive wait, a stream idle timeout), so no list order is theirs.
// Each Conn knows its index, so that a change of deadline is one fix, O(log n), and nothing
// allocates once the heap grew to the loop's Conns.
type connHeap struct{ a []*Conn }

func (h *connHeap) top() *Conn {
	if len(h.a) == 0 {
		return nil
	}
	return h.a[0]
}

// set puts c at its deadline c.at, inserting it or moving it.
func (h *connHeap) set(c *Conn) {
	if c.idx < 0 {
		c.idx = len(h.a)
		h.a = append(h.a, c)
	}
	if !h.up(c.idx) {
		h.down(c.idx)
	}
}

func (h *connHeap) remove(c *Conn) {
	i, last := c.idx, len(h.a)-1
	if i < 0 {
		return
	}
	if i != last {
		h.swap(i, last)
	}
	h.a[last] = nil
	h.a = h.a[:last]
	c.idx = -1
	if i != last {
		if !h.up(i) {
			h.down(i)
		}
	}
}

func (h *connHeap) swap(i, j int) {
	h.a[i], h.a[j] = h.a[j], h.a[i]
	h.a[i].idx, h.a[j].idx = i, j
}

// up moves element i towards the root; it reports whether it moved.
func (h *connHeap) up(i int) bool {
	moved := false
	for i > 0 {
		parent := (i - 1) / 2
		if h.a[parent].at <= h.a[i].at {
			break
		}
		h.swap(i, parent)
		i, moved = parent, true
	}
	return moved
}

func (h *connHeap) down(i int) {
	n := len(h.a)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.a[r].at < h.a[l].at {
			m = r
		}
		if h.a[i].at <= h.a[m].at {
			return
		}
		h.swap(i, m)
		i = m
	}
}
