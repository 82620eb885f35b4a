package source

import (
	"time"

	"github.com/meshentry/meshentry/internal/diag"
)

// Result names the outcome of a reload attempt.
type Result string

const (
	// Loaded is the startup load, before any reload was attempted.
	Loaded Result = "loaded"
	// Accepted means the change compiled without error and its snapshot now serves.
	Accepted Result = "accepted"
	// Refused means the change was left out whole; the previous snapshot keeps serving.
	Refused Result = "refused"
	// Unchanged means a forced attempt (SIGHUP), or files edited back, found the serving content.
	Unchanged Result = "unchanged"
)

// Status is what the watcher has loaded and how its last attempt went. A Status returned by
// Watcher.Status is a copy the caller owns, except Diagnostics and LastErrorDiagnostics, which
// are shared and must not be changed.
type Status struct {
	// Version is the serving snapshot's version: 1 at startup, one more per accepted change.
	Version uint64 `json:"version"`
	// LoadedAt is when the serving snapshot was accepted (the startup load for version 1).
	LoadedAt time.Time `json:"loaded_at"`
	// Files, Documents and Services count what the serving snapshot was built from and holds.
	Files     int `json:"files"`
	Documents int `json:"documents"`
	Services  int `json:"services"`
	// Diagnostics are the warnings and notes of the serving config (errors too at a startup
	// with --allow-invalid).
	Diagnostics []diag.Diagnostic `json:"diagnostics,omitempty"`

	// LastAttempt and LastResult describe the latest reload attempt; LastAttempt is zero and
	// LastResult is Loaded until the first one.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastResult  Result    `json:"last_result"`

	// LastError is why the latest refused attempt was refused, empty when none was; it stays
	// after later accepted ones, as LastErrorAt says when it happened.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastErrorDiagnostics are the error findings of that attempt, each printed by String as
	// `validate` prints it (file:line: Kind ns/name: field: message).
	LastErrorDiagnostics []diag.Diagnostic `json:"last_error_diagnostics,omitempty"`

	// Accepted and Refused count the reload attempts that changed the snapshot and that were
	// refused, since startup.
	Accepted uint64 `json:"reloads_accepted"`
	Refused  uint64 `json:"reloads_refused"`
}
