package httpfwd

import "time"

// cors applies a route's CORS policy, as Envoy's CORS filter: a request from an allowed origin
// has the origin noted for the response's fields, and a preflight from one (OPTIONS with
// Access-Control-Request-Method) is answered here with 200. Requests from other origins pass
// unchanged. It reports done when it answered.
func (c *conn) cors(start time.Time, p *CORS) (done, keep bool) {
	origin := c.req.Header("origin")
	if len(origin) == 0 || !p.allows(origin) {
		return false, false
	}
	c.rt.origin = origin
	if c.req.Method != "OPTIONS" || c.req.Header("access-control-request-method") == nil {
		return false, false
	}
	fields := []Field{{Name: "Access-Control-Allow-Origin", Value: string(origin)}}
	for _, f := range [...]Field{
		{Name: "Access-Control-Allow-Methods", Value: p.AllowMethods},
		{Name: "Access-Control-Allow-Headers", Value: p.AllowHeaders},
		{Name: "Access-Control-Max-Age", Value: p.MaxAge},
	} {
		if f.Value != "" {
			fields = append(fields, f)
		}
	}
	if p.AllowCredentials {
		fields = append(fields, Field{Name: "Access-Control-Allow-Credentials", Value: "true"})
	}
	return true, c.answer(start, 200, "", fields)
}

// writeCORS writes the CORS fields of a response to a request from an allowed origin.
func (c *conn) writeCORS() {
	p := c.rt.act.CORS
	if p == nil || c.rt.origin == nil {
		return
	}
	w := c.bw
	w.WriteString("Access-Control-Allow-Origin: ")
	w.Write(c.rt.origin)
	w.WriteString("\r\n")
	if p.AllowCredentials {
		w.WriteString("Access-Control-Allow-Credentials: true\r\n")
	}
	if p.ExposeHeaders != "" {
		w.WriteString("Access-Control-Expose-Headers: ")
		writeSanitized(c, p.ExposeHeaders)
		w.WriteString("\r\n")
	}
}
