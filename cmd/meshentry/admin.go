package main

import (
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/admin"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/proxy"
	"github.com/meshentry/meshentry/internal/source"
)

// adminFlags are the admin API's own flags; --admin (the address) stays with run's listeners.
type adminFlags struct {
	pprof    bool
	pageRows int
	maxDumps int
	// busy counts the dumps refused at maxDumps: the admin API adds to it and the metrics read
	// it, and both are built from these flags.
	busy atomic.Uint64
}

func (a *adminFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&a.pprof, "admin-pprof", false, "serve Go's profiles under /debug/pprof/ on the admin address")
	fl.IntVar(&a.pageRows, "admin-page-rows", 500, "services, clusters and routes the admin HTML page lists at most (the JSON endpoints list all)")
	fl.IntVar(&a.maxDumps, "admin-max-dumps", admin.DefaultMaxDumps, "admin dumps (/config_dump, /registry, /routes, /clusters, the page) served at once, each built whole in memory; one more gets 503, counted in meshentry_admin_busy_total (/ready and /healthz are never limited)")
}

// adminWiring is what the admin API reads from a running proxy.
type adminWiring struct {
	log   *slog.Logger
	level *slog.LevelVar
	proxy *proxy.Proxy
	lns   listeners
	// inbound are the --inbound listeners, listed after lns.
	inbound []admin.Listener
	ns      string
	ready   admin.NotReady
	reload  func() admin.ReloadStatus
	// metrics serves /stats/prometheus; nil gives 404.
	metrics http.Handler
	// dns serves /dns; nil (the DNS proxy off) gives 404.
	dns func() admin.DNSJSON
}

// adminConfig builds the admin API's Config.
func adminConfig(f *runFlags, w adminWiring) admin.Config {
	ls := append(adminListeners(w.lns), w.inbound...)
	return admin.Config{
		NotReady:  w.ready,
		Snapshot:  w.proxy.Snapshot,
		Clusters:  func() []admin.Cluster { return adminClusters(w.proxy.Clusters()) },
		Listeners: func() []admin.Listener { return ls },
		Reload:    w.reload,
		Level:     w.level,
		Metrics:   w.metrics,
		Namespace: w.ns,
		Pprof:     f.admin.pprof,
		PageRows:  f.admin.pageRows,
		MaxDumps:  f.admin.maxDumps,
		Busy:      &f.admin.busy,
		Logger:    w.log,
		DNS:       w.dns,
	}
}

// watcherReload reads the config source's status in the admin API's terms. Errors are the
// findings of the latest refused reload while it is the latest attempt; otherwise those that left
// documents out of the serving config (a startup with --allow-invalid).
func watcherReload(w configSource) func() admin.ReloadStatus {
	return func() admin.ReloadStatus {
		st := w.Status()
		rs := admin.ReloadStatus{Version: st.Version, LoadedAt: st.LoadedAt, LastAttemptAt: st.LastAttempt,
			OK: st.LastResult != source.Refused, Accepted: st.Accepted + 1, Refused: st.Refused}
		if rs.LastAttemptAt.IsZero() {
			rs.LastAttemptAt = st.LoadedAt
		}
		found := st.Diagnostics
		if !rs.OK {
			found = st.LastErrorDiagnostics
		}
		for _, d := range found {
			if d.Level == diag.Error {
				rs.Errors = append(rs.Errors, d.String())
			}
		}
		return rs
	}
}

// adminListeners names the listeners run serves, in Envoy's "name::address" terms.
func adminListeners(lns listeners) []admin.Listener {
	var out []admin.Listener
	for _, l := range []struct {
		name string
		ln   net.Listener
	}{{"forward_proxy", lns.forward}, {"capture", lns.capture}, {"admin", lns.admin}} {
		switch {
		case l.ln != nil:
			out = append(out, admin.Listener{Name: l.name, Address: l.ln.Addr().String()})
		case l.name == "forward_proxy" && lns.forwardLoop != nil:
			out = append(out, admin.Listener{Name: l.name, Address: lns.forwardLoop.String()})
		}
	}
	return out
}

// adminClusters copies the proxy's cluster view into the admin API's terms.
func adminClusters(cs []proxy.Cluster) []admin.Cluster {
	out := make([]admin.Cluster, 0, len(cs))
	for _, c := range cs {
		ac := admin.Cluster{Name: c.Name, Host: c.Host, Namespace: c.Namespace, Port: c.Port, Resolution: c.Resolution.String()}
		for _, e := range c.Endpoints {
			ac.Endpoints = append(ac.Endpoints, admin.Endpoint{
				Address: e.Address, Hostname: e.Hostname, Unix: e.Unix, Weight: e.Weight,
				Region: e.Locality.Region, Zone: e.Locality.Zone, SubZone: e.Locality.Subzone, Network: e.Network,
				Priority: e.Priority, Ejected: e.Ejected, Failing: e.Failing, Counts: admin.Counts(e.Counts),
			})
		}
		out = append(out, ac)
	}
	return out
}

// warnIfExposed logs a warning when the admin API is reachable from other hosts: it shows the
// whole configuration and changes the log level, and has no authentication.
func warnIfExposed(log *slog.Logger, addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsLoopback() {
		return false
	}
	log.Warn("the admin API is bound to a non-loopback address: anyone who reaches it sees the config and can change the log level", "admin", addr.String())
	return true
}
