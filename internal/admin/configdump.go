package admin

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/meshentry/meshentry/internal/config"
)

// ConfigDumpJSON is /config_dump: the documents the serving snapshot was built from, its version,
// and how the last reload went.
type ConfigDumpJSON struct {
	Version    uint64         `json:"version"`
	Documents  []DocumentJSON `json:"documents"`
	LastReload ReloadJSON     `json:"last_reload"`
}

// DocumentJSON is one loaded document: what it is, where it came from, and its spec.
type DocumentJSON struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"api_version,omitempty"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// Source is "file:line" of the document's first key.
	Source string          `json:"source"`
	Spec   json.RawMessage `json:"spec,omitempty"`
}

// ReloadJSON is ReloadStatus on the wire, with times in RFC 3339.
type ReloadJSON struct {
	Version       uint64   `json:"version"`
	LoadedAt      string   `json:"loaded_at,omitempty"`
	LastAttemptAt string   `json:"last_attempt_at,omitempty"`
	OK            bool     `json:"ok"`
	Errors        []string `json:"errors"`
	Accepted      uint64   `json:"accepted"`
	Refused       uint64   `json:"refused"`
}

func (a *api) configDump(w http.ResponseWriter, _ *http.Request) {
	snap := a.snapshot()
	out := ConfigDumpJSON{Version: snap.Version, Documents: []DocumentJSON{}, LastReload: reloadJSON(a.reload())}
	for _, d := range snap.Documents {
		out.Documents = append(out.Documents, documentJSON(d))
	}
	writeJSON(w, out)
}

func documentJSON(d *config.Document) DocumentJSON {
	out := DocumentJSON{Kind: d.Kind, APIVersion: d.APIVersion, Namespace: d.Namespace, Name: d.Name, Source: sourceOf(d.File, d.Line)}
	if d.Spec != nil {
		// The spec was validated already, so marshalling it can only fail on a bug; the
		// document is listed without it rather than the dump failing.
		if b, err := protojson.Marshal(d.Spec); err == nil {
			out.Spec = b
		}
	}
	return out
}

func reloadJSON(r ReloadStatus) ReloadJSON {
	out := ReloadJSON{Version: r.Version, OK: r.OK, Errors: r.Errors, Accepted: r.Accepted, Refused: r.Refused}
	if out.Errors == nil {
		out.Errors = []string{}
	}
	if !r.LoadedAt.IsZero() {
		out.LoadedAt = r.LoadedAt.UTC().Format(time.RFC3339Nano)
	}
	if !r.LastAttemptAt.IsZero() {
		out.LastAttemptAt = r.LastAttemptAt.UTC().Format(time.RFC3339Nano)
	}
	return out
}

// sourceOf is "file:line", or the file alone when the line is unknown.
func sourceOf(file string, line int) string {
	if line <= 0 {
		return file
	}
	return file + ":" + strconv.Itoa(line)
}
