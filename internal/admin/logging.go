package admin

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// levelNames are the levels /logging takes, by Envoy's names and slog's: Envoy's trace is debug
// here, critical is error, and off is above every level slog logs.
var levelNames = map[string]slog.Level{
	"trace": slog.LevelDebug, "debug": slog.LevelDebug, "info": slog.LevelInfo,
	"warning": slog.LevelWarn, "warn": slog.LevelWarn, "error": slog.LevelError,
	"critical": slog.LevelError, "off": slog.LevelError + 100,
}

// logging shows the log level and, given ?level= in a POST, changes it. A change takes POST, as
// Envoy's admin requires: any web page can make the operator's browser GET a loopback address.
// Handler also refuses a browser's cross-site POST.
func (a *api) logging(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Level == nil {
		http.Error(w, "the log level cannot be changed here", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if name := r.URL.Query().Get("level"); name != "" {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			w.WriteHeader(http.StatusMethodNotAllowed)
			fmt.Fprintln(w, "changing the level takes a POST: curl -X POST 'ADMIN/logging?level=debug'")
			return
		}
		lv, ok := levelNames[strings.ToLower(name)]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "unknown level %q; usage: /logging?level=<trace|debug|info|warning|error|critical|off>\n", name)
			return
		}
		old := a.cfg.Level.Level()
		a.cfg.Level.Set(lv)
		// Logged at the new level (info at least), so the line shows in the log it now governs.
		a.log.Log(r.Context(), max(lv, slog.LevelInfo), "log level changed", "from", levelName(old), "to", levelName(lv))
	}
	fmt.Fprintf(w, "active loggers:\n  meshentry: %s\n", levelName(a.cfg.Level.Level()))
}

// levelName names a level as Envoy does.
func levelName(l slog.Level) string {
	switch {
	case l > slog.LevelError:
		return "off"
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= slog.LevelInfo:
		return "info"
	}
	return "debug"
}
