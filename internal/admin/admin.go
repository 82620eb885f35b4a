// Package admin serves the operator's HTTP endpoints, in the spirit of Envoy's admin interface:
// liveness and readiness, the loaded config, the registry, clusters with endpoint health and
// counters, listeners, metrics, the log level, and an HTML page with the same tables.
package admin

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshentry/meshentry/internal/registry"
)

// NotReady lists what keeps the process from serving traffic; an empty list means ready.
type NotReady func() []string

// Listener is one socket the process serves, as /listeners shows it.
type Listener struct {
	// Name says what the listener is for ("forward proxy", "capture", "admin").
	Name string
	// Address is the bound "ip:port".
	Address string
}

// ReloadStatus is the outcome of the last attempt to load the configuration, and the counts of
// reloads accepted and refused since the start.
type ReloadStatus struct {
	// Version is the snapshot version serving; LoadedAt when it started serving.
	Version  uint64
	LoadedAt time.Time
	// LastAttemptAt is when a config was last compiled, OK whether that attempt was accepted.
	LastAttemptAt time.Time
	OK            bool
	// Errors are the findings of the last attempt that rejected documents, as validate prints them.
	Errors []string
	// Accepted and Refused count the loads accepted (the first one included) and refused.
	Accepted, Refused uint64
}

// Config is what the admin API reads; every func is called per request and must be safe to call
// from many goroutines. Nil funcs and handlers serve their endpoints empty (or 404 for Metrics).
type Config struct {
	// NotReady lists what keeps /ready from answering 200.
	NotReady NotReady
	// Snapshot returns the registry snapshot serving now.
	Snapshot func() *registry.Snapshot
	// Clusters returns the proxy's clusters with endpoint health and counters.
	Clusters func() []Cluster
	// Listeners returns the sockets the process serves.
	Listeners func() []Listener
	// Reload returns the outcome of the last config load.
	Reload func() ReloadStatus
	// Metrics serves /stats/prometheus; nil answers 404.
	Metrics http.Handler
	// Level is the level the process's logger filters by; /logging changes it. Nil makes
	// /logging answer 404.
	Level *slog.LevelVar
	// Namespace is the proxy's workload namespace, for what /routes and the page say is visible.
	Namespace string
	// PageRows bounds the services, clusters and routes the HTML page lists (500 when 0), so a
	// registry of thousands of entries gives a page a browser can open; the page says how many
	// it left out, and the JSON endpoints list them all.
	PageRows int
	// Pprof serves Go's profiles under /debug/pprof/; off by default, as profiles cost CPU and
	// show the process's insides.
	Pprof bool
	// MaxDumps bounds the dumps (/config_dump, /registry, /routes, /clusters and the page)
	// served at once (DefaultMaxDumps when 0): each builds its whole answer in memory, tens of
	// MiB for a registry of 10,000 services. One more gets 503; the probes are never limited.
	MaxDumps int
	// Busy counts the dumps refused because MaxDumps were being served; nil does not count.
	Busy *atomic.Uint64
	// Logger records level changes; nil discards.
	Logger *slog.Logger
	// DNS returns the DNS proxy's allocations for /dns; nil (the DNS proxy off) gives 404.
	DNS func() DNSJSON
}

// DefaultMaxDumps is how many dumps the admin API serves at once when Config.MaxDumps is 0.
const DefaultMaxDumps = 4

// api is the admin API over one Config.
type api struct {
	cfg Config
	log *slog.Logger
	// dumps holds a token for each dump being served.
	dumps chan struct{}
}

// Handler serves every admin endpoint of cfg.
func Handler(cfg Config) http.Handler {
	if cfg.MaxDumps <= 0 {
		cfg.MaxDumps = DefaultMaxDumps
	}
	a := &api{cfg: cfg, log: cfg.Logger, dumps: make(chan struct{}, cfg.MaxDumps)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ready", a.ready)
	mux.HandleFunc("GET /config_dump", a.bounded(a.configDump))
	mux.HandleFunc("GET /registry", a.bounded(a.registry))
	mux.HandleFunc("GET /routes", a.bounded(a.routes))
	mux.HandleFunc("GET /clusters", a.bounded(a.clusters))
	mux.HandleFunc("GET /listeners", a.listeners)
	mux.HandleFunc("GET /dns", a.bounded(a.dns))
	mux.HandleFunc("GET /logging", a.logging)
	// Cross-origin protection refuses a POST that a browser says another site sent (by
	// Sec-Fetch-Site or Origin); clients that are not browsers send neither and are served.
	mux.Handle("POST /logging", http.NewCrossOriginProtection().Handler(http.HandlerFunc(a.logging)))
	mux.HandleFunc("GET /stats/prometheus", a.metrics)
	mux.HandleFunc("GET /{$}", a.bounded(a.page))
	return loopbackNames(mux)
}

// loopbackNames refuses a request that reached a loopback socket naming a host other than an
// IP address or localhost: that is a browser led there by DNS rebinding, reading the admin API
// as the page's own origin. Clients of a non-loopback address may use any name.
func loopbackNames(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
		if local != nil && local.IP.IsLoopback() && !loopbackName(r.Host) {
			http.Error(w, "the admin API on a loopback address answers only to an IP address or localhost as Host", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackName reports whether host (with or without a port) is an IP literal, localhost or a
// name under localhost, which resolvers answer with loopback only.
func loopbackName(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// bounded serves h only while fewer than MaxDumps dumps are being served, and 503 otherwise,
// as the metrics handler treats one scrape too many: the client may ask again.
func (a *api) bounded(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.dumps <- struct{}{}:
		default:
			if a.cfg.Busy != nil {
				a.cfg.Busy.Add(1)
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("admin API busy: %d dumps are being served; try again", cap(a.dumps)), http.StatusServiceUnavailable)
			return
		}
		defer func() { <-a.dumps }()
		h(w, r)
	}
}

func (a *api) ready(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	pending := a.notReady()
	if len(pending) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", strings.Join(pending, "; "))
		return
	}
	fmt.Fprintln(w, "ready")
}

func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Metrics == nil {
		http.Error(w, "metrics are not enabled", http.StatusNotFound)
		return
	}
	a.cfg.Metrics.ServeHTTP(w, r)
}

// The accessors below read the Config, treating a nil func as "nothing".

func (a *api) notReady() []string {
	if a.cfg.NotReady == nil {
		return nil
	}
	return a.cfg.NotReady()
}

func (a *api) snapshot() *registry.Snapshot {
	if a.cfg.Snapshot == nil {
		return registry.Build(nil, 0)
	}
	return a.cfg.Snapshot()
}

func (a *api) clusterList() []Cluster {
	if a.cfg.Clusters == nil {
		return nil
	}
	return a.cfg.Clusters()
}

func (a *api) listenerList() []Listener {
	if a.cfg.Listeners == nil {
		return nil
	}
	return a.cfg.Listeners()
}

func (a *api) reload() ReloadStatus {
	if a.cfg.Reload == nil {
		return ReloadStatus{}
	}
	return a.cfg.Reload()
}

// wantsJSON reports whether the request asks for ?format=json, as Envoy's admin endpoints take it.
func wantsJSON(r *http.Request) bool { return r.URL.Query().Get("format") == "json" }
