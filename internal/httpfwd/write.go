package httpfwd

// writeRequestHead writes the head sent upstream: origin-form target, HTTP/1.1, Host, the
// end-to-end fields and an x-request-id.
func (c *conn) writeRequestHead(up *Upstream) {
	w := c.ubw
	req := &c.req
	raw := req.raw
	w.WriteString(req.Method)
	w.WriteByte(' ')
	if c.rt.path != nil {
		w.Write(c.rt.path)
	} else if req.Absolute {
		switch {
		case len(req.Path) == 0 && req.Method == "OPTIONS":
			w.WriteByte('*')
		case len(req.Path) == 0 || req.Path[0] != '/':
			w.WriteByte('/')
		}
		w.Write(req.Path)
	} else {
		w.Write(req.Target)
	}
	w.WriteString(" HTTP/1.1\r\n")
	ownHost := true
	host, ops := up.Host, (*HeaderOps)(nil)
	if a := c.rt.act; a != nil {
		if a.Rewrite != nil && a.Rewrite.Authority != "" && !c.rt.mirroring {
			host = a.Rewrite.Authority
		}
		ops = &a.Request
	}
	switch {
	case host != "":
		w.WriteString("Host: ")
		w.WriteString(host)
		w.WriteString("\r\n")
	case req.Absolute:
		w.WriteString("Host: ")
		w.Write(raw[req.authority.start:req.authority.end])
		w.WriteString("\r\n")
	case req.hosts == 0:
		w.WriteString("Host: ")
		w.WriteString(up.Addr)
		w.WriteString("\r\n")
	default:
		ownHost = false
	}
	upgrade := req.WantsUpgrade()
	for i := range req.fields {
		f := &req.fields[i]
		if !req.forwarded(f) && !(upgrade && f.kind == kindUpgrade) || ownHost && f.kind == kindHost ||
			f.kind == kindTransferEncoding || f.kind == kindRequestID || replaced(up.Header, raw[f.name.start:f.name.end]) ||
			ops != nil && ops.drops(raw[f.name.start:f.name.end]) {
			continue
		}
		if f.kind == kindVia {
			c.writeVia(i)
			continue
		}
		w.Write(raw[f.name.start:f.value.end])
		w.WriteString("\r\n")
	}
	if req.Chunked() {
		// The one coding a request may have, spelt so that no upstream can read it otherwise.
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if req.lastVia < 0 {
		c.writeVia(-1)
	}
	for _, f := range up.Header {
		w.WriteString(f.Name)
		w.WriteString(": ")
		w.WriteString(f.Value)
		w.WriteString("\r\n")
	}
	if ops != nil {
		c.writeOps(w, ops)
	}
	// Exactly one id goes upstream, the client's or ours, whatever the client's Connection
	// field named and however many (or empty) x-request-id fields it sent.
	w.WriteString("x-request-id: ")
	w.Write(c.rec.RequestID)
	w.WriteString("\r\n")
	if upgrade {
		w.WriteString("Connection: Upgrade\r\n")
	}
	w.WriteString("\r\n")
}

// writeResponseHead writes c.resp to the client as HTTP/1.1 without its hop-by-hop fields.
func (c *conn) writeResponseHead(keep, dechunk bool) {
	w := c.bw
	resp := &c.resp
	raw := resp.raw
	w.WriteString("HTTP/1.1 ")
	w.Write(raw[resp.rest.start:resp.rest.end])
	w.WriteString("\r\n")
	upgrade := resp.status == 101
	for i := range resp.fields {
		f := &resp.fields[i]
		switch {
		case upgrade && (f.kind == kindUpgrade || f.kind == kindConnection):
		case f.kind == kindTransferEncoding:
			continue // written below
		case !resp.forwarded(f):
			continue
		case c.rt.act != nil && c.rt.act.Response.drops(raw[f.name.start:f.name.end]):
			continue
		case f.kind == kindContentLength && resp.has(flagTE):
			// Transfer-Encoding overrides Content-Length, which must not be forwarded.
			continue
		}
		w.Write(raw[f.name.start:f.value.end])
		w.WriteString("\r\n")
	}
	if resp.has(flagTE) && !dechunk {
		c.writeCodings()
	}
	if resp.status >= 200 {
		c.writeExtra()
	}
	switch {
	case upgrade || resp.status < 200:
	case !keep:
		w.WriteString("Connection: close\r\n")
	case c.req.ProtoMinor == 0:
		w.WriteString("Connection: keep-alive\r\n")
	}
	w.WriteString("\r\n")
}

// writeExtra writes the Upstream's ResponseFields into a final response head.
func (c *conn) writeExtra() {
	for _, f := range c.ex.extra {
		c.bw.WriteString(f.Name)
		c.bw.WriteString(": ")
		writeSanitized(c, f.Value)
		c.bw.WriteString("\r\n")
	}
	if c.rt.act != nil {
		c.writeOps(c.bw, &c.rt.act.Response)
		c.writeCORS()
	}
}

// writeCodings writes the response's transfer codings as one field of bare names, so that the
// client reads them as the engine did: parameters, empty elements and the split over several
// fields, which recipients treat in different ways, are dropped.
func (c *conn) writeCodings() {
	w := c.bw
	resp := &c.resp
	n := 0
	for i := range resp.fields {
		f := &resp.fields[i]
		if f.kind != kindTransferEncoding {
			continue
		}
		v := resp.raw[f.value.start:f.value.end]
		for s := range listItems(v) {
			if n == 0 {
				w.WriteString("Transfer-Encoding: ")
			} else {
				w.WriteString(", ")
			}
			if name := codingName(v[s.start:s.end]); equalFold(name, "chunked") {
				w.WriteString("chunked")
			} else {
				w.Write(name)
			}
			n++
		}
	}
	if n > 0 {
		w.WriteString("\r\n")
	}
}

// replaced reports whether name is one of the fields the Upstream sets itself, so the client's
// fields of that name are not forwarded.
func replaced(set []Field, name []byte) bool {
	for i := range set {
		if len(set[i].Name) == len(name) && equalFoldString(name, set[i].Name) {
			return true
		}
	}
	return false
}
