package validate

import (
	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// Document checks one document against the validation rules of its kind and returns every error
// and warning it finds, in rule order; a document with no error-level finding is accepted.
func Document(doc *config.Document) []diag.Diagnostic {
	if doc == nil || doc.Spec == nil {
		return nil
	}
	r := &report{doc: doc}
	switch spec := doc.Spec.(type) {
	case *networking.ServiceEntry:
		serviceEntry(r, spec)
	case *networking.DestinationRule:
		destinationRule(r, spec)
	case *networking.VirtualService:
		virtualService(r, spec)
	case *networking.Gateway:
		gateway(r, spec)
	case *networking.Sidecar:
		sidecar(r, spec)
	}
	return r.diags
}

// Documents validates every document and returns the accepted ones (no errors) with all findings.
func Documents(docs []*config.Document) ([]*config.Document, []diag.Diagnostic) {
	var ok []*config.Document
	var all []diag.Diagnostic
	for _, d := range docs {
		ds := Document(d)
		all = append(all, ds...)
		if errs, _, _ := diag.Split(ds); len(errs) == 0 && d != nil && d.Spec != nil {
			ok = append(ok, d)
		}
	}
	return ok, all
}
