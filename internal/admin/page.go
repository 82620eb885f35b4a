package admin

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"
	"time"
)

//go:embed page.html.tmpl
var pageFS embed.FS

// pageTemplate is parsed once; a template that does not parse fails every test at init.
var pageTemplate = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"join":   strings.Join,
	"health": healthFlags,
}).ParseFS(pageFS, "page.html.tmpl"))

// pageData is what the HTML page shows: the same data as the JSON endpoints.
type pageData struct {
	Now       string
	Namespace string
	NotReady  []string
	Reload    ReloadJSON
	Registry  RegistryJSON
	Routes    RoutesJSON
	Clusters  []Cluster
	Listeners []Listener
	Pprof     bool
	Metrics   bool
	// Hidden counts the services, clusters and routes left out by Config.PageRows.
	HiddenServices, HiddenClusters, HiddenRoutes int
}

// defaultPageRows is Config.PageRows when unset.
const defaultPageRows = 500

// firstRows cuts list to at most n entries and says how many it cut.
func firstRows[T any](list []T, n int) ([]T, int) {
	if len(list) <= n {
		return list, 0
	}
	return list[:n], len(list) - n
}

// page renders the overview for a person in a browser: server-side, no scripts.
func (a *api) page(w http.ResponseWriter, _ *http.Request) {
	snap := a.snapshot()
	d := pageData{
		Now:       time.Now().UTC().Format(time.RFC3339),
		Namespace: a.cfg.Namespace,
		NotReady:  a.notReady(),
		Reload:    reloadJSON(a.reload()),
		Registry:  registryJSON(snap, a.cfg.Namespace),
		Routes:    routesJSON(snap, a.cfg.Namespace),
		Clusters:  a.clusterList(),
		Listeners: a.listenerList(),
		Pprof:     a.cfg.Pprof,
		Metrics:   a.cfg.Metrics != nil,
	}
	rows := a.cfg.PageRows
	if rows <= 0 {
		rows = defaultPageRows
	}
	d.Registry.Services, d.HiddenServices = firstRows(d.Registry.Services, rows)
	d.Clusters, d.HiddenClusters = firstRows(d.Clusters, rows)
	d.Routes.Routes, d.HiddenRoutes = firstRows(d.Routes.Routes, rows)
	// Rendered into a buffer first, so a template error is a 500 rather than half a page.
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		a.log.Error("admin page failed to render", "err", err)
		http.Error(w, "the page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}
