// Package diag holds the findings that loading, validation and analysis report about documents.
package diag

import (
	"fmt"
	"sort"
)

// Level says whether a finding rejects its document or only warns about it.
type Level int

const (
	// Error rejects the document: it is left out of the registry.
	Error Level = iota
	// Warning keeps the document but points at something likely wrong.
	Warning
	// Info notes something done on purpose that the user may not expect, such as a document of a
	// kind that is not Istio config being skipped, as istioctl validate skips it.
	Info
)

// String names the level as the text and JSON outputs print it.
func (l Level) String() string {
	switch l {
	case Warning:
		return "warning"
	case Info:
		return "info"
	}
	return "error"
}

// MarshalText lets JSON output carry the level by name.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Diagnostic is one finding about one document, located by file, line and field path.
type Diagnostic struct {
	Level     Level  `json:"level"`
	Code      string `json:"code"`
	File      string `json:"file"`
	Line      int    `json:"line"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
}

// String renders the finding as one line: "file:line: Kind ns/name: field: message", with the level
// and code named for warnings and notes so that errors keep the short form users grep for.
func (d Diagnostic) String() string {
	s := d.File
	if d.Line > 0 {
		s += fmt.Sprintf(":%d", d.Line)
	}
	s += ": "
	if d.Kind != "" {
		s += d.Kind + " " + d.Namespace + "/" + d.Name + ": "
	}
	if d.Level != Error {
		s += d.Level.String()
		if d.Code != "" {
			s += " [" + d.Code + "]"
		}
		s += ": "
	}
	if d.Field != "" {
		s += d.Field + ": "
	}
	return s + d.Message
}

// Sort orders findings by file, line, then message, so output is stable across runs.
func Sort(ds []Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Message < b.Message
	})
}

// Split separates errors, warnings and notes, keeping order.
func Split(ds []Diagnostic) (errs, warns, infos []Diagnostic) {
	for _, d := range ds {
		switch d.Level {
		case Error:
			errs = append(errs, d)
		case Warning:
			warns = append(warns, d)
		default:
			infos = append(infos, d)
		}
	}
	return errs, warns, infos
}
