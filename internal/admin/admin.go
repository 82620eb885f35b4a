// Package admin serves the operator's HTTP endpoints: liveness and readiness now, metrics and
// config dumps later.
package admin

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"
)

// NotReady lists what keeps the process from serving traffic; an empty list means ready.
type NotReady func() []string

// Handler serves /healthz (the process is alive), /ready (200 when nothing is pending, else 503
// naming what is not ready yet) and Go's profiles under /debug/pprof/, so a slow proxy can be
// profiled where it runs.
func Handler(notReady NotReady) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		pending := notReady()
		if len(pending) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", strings.Join(pending, "; "))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}
