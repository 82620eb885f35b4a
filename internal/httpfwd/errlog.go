package httpfwd

import (
	"log/slog"
	"time"
)

// Rates of the engine's own error log: a burst of logBurst lines, then logRate a second.
// A client can make the engine fail at will (a host that does not answer, a malformed head),
// so one line per failure would let it flood the log and the disk.
const (
	logRate  = 10
	logBurst = 50
)

// logFailure logs, rate-limited, why the engine answered a request with an error of its own
// (status, or 0 for a failure it recovered from): the details a client must not see (endpoint
// addresses, resolver errors) go here, with the request id the client was given.
func (c *conn) logFailure(level slog.Level, msg string, status int, err error) {
	c.s.logFailure(level, msg, failureInfo{
		requestID: c.rec.RequestID, remote: addrString(c.req.RemoteAddr),
		upstream: c.rec.Upstream, status: status, err: err,
	})
}

// failureInfo is what a failure log line says about the request; HTTP/1.1 connections and
// HTTP/2 streams fill it from their own state.
type failureInfo struct {
	requestID []byte
	remote    string
	upstream  string
	status    int
	err       error
}

// logFailure writes one rate-limited failure line; see conn.logFailure.
func (s *Server) logFailure(level slog.Level, msg string, f failureInfo) {
	if !s.log.Enabled(s.baseCtx, level) {
		return
	}
	ok, suppressed := s.errLog.Allow(time.Now())
	if !ok {
		s.stats.logsSuppressed.Add(1)
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", string(f.requestID)),
		slog.String("remote", f.remote),
	}
	if f.status > 0 {
		attrs = append(attrs, slog.Int("status", f.status))
	}
	if f.upstream != "" {
		attrs = append(attrs, slog.String("upstream", f.upstream))
	}
	if f.err != nil {
		attrs = append(attrs, slog.String("err", f.err.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	s.log.LogAttrs(s.baseCtx, level, msg, attrs...)
}

// addrString formats a possibly nil address.
func addrString(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}
