package validate

import (
	"fmt"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// report collects the findings about one document, each located by its field path.
type report struct {
	doc   *config.Document
	diags []diag.Diagnostic
}

func (r *report) add(level diag.Level, code, field, msg string) {
	r.diags = append(r.diags, diag.Diagnostic{
		Level: level, Code: code, File: r.doc.File, Line: r.doc.LineOf(field),
		Kind: r.doc.Kind, Namespace: r.doc.Namespace, Name: r.doc.Name, Field: field, Message: msg,
	})
}

func (r *report) errorf(code, field, format string, args ...any) {
	r.add(diag.Error, code, field, fmt.Sprintf(format, args...))
}

func (r *report) warnf(code, field, format string, args ...any) {
	r.add(diag.Warning, code, field, fmt.Sprintf(format, args...))
}

// at builds a field path such as "spec.ports[2].name" from a list path, an index and a suffix.
func at(list string, i int, suffix string) string {
	return fmt.Sprintf("%s[%d]%s", list, i, suffix)
}

func (r *report) infof(code, field, format string, args ...any) {
	r.add(diag.Info, code, field, fmt.Sprintf(format, args...))
}
