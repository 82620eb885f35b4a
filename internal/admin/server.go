package admin

import (
	"net/http"
	"time"
)

// Timeouts bound each admin connection, so that clients which stall or linger cannot use up the
// descriptors the admin API needs to keep answering; zero fields take the defaults noted.
type Timeouts struct {
	// ReadHeader bounds reading a request head (5 s).
	ReadHeader time.Duration
	// Read bounds reading a whole request (10 s).
	Read time.Duration
	// Write bounds writing a response (60 s): above the 30 s CPU profile pprof takes by default,
	// which net/http/pprof refuses to take when it would outlast the write timeout.
	Write time.Duration
	// Idle closes a keep-alive connection that waits this long for its next request (60 s).
	Idle time.Duration
}

// maxHeaderBytes bounds an admin request head; the admin API takes no large requests.
const maxHeaderBytes = 64 << 10

// NewServer returns the admin HTTP server for Handler(cfg), with every timeout set.
func NewServer(cfg Config, t Timeouts) *http.Server {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.ReadHeader, 5*time.Second)
	def(&t.Read, 10*time.Second)
	def(&t.Write, 60*time.Second)
	def(&t.Idle, 60*time.Second)
	return &http.Server{
		Handler:           Handler(cfg),
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}
