package validate

// Reserved exportTo values.
const (
	exportPrivate = "." // the resource's own namespace
	exportPublic  = "*" // every namespace
	exportNone    = "~" // nobody; ServiceEntries only
)

// exportTo applies Istio's validateExportTo to the list at field: no duplicates (with "." standing
// for the own namespace), only ".", "*", namespace names (and "~" for ServiceEntries), and neither
// "*" nor "~" combined with anything else.
func exportTo(r *report, field string, entries []string, serviceEntry bool) {
	if len(entries) == 0 {
		return
	}
	seen := map[string]bool{}
	for i, e := range entries {
		f := at(field, i, "")
		key := e
		if e == exportPrivate {
			key = r.doc.Namespace
		}
		if seen[key] {
			if key != e {
				r.errorf(CodeExportToDuplicate, f, "exportTo lists both \".\" and this namespace %q, which are the same", r.doc.Namespace)
			} else {
				r.errorf(CodeExportToDuplicate, f, "exportTo lists %q twice", e)
			}
			continue
		}
		switch {
		case e == exportNone && serviceEntry, e == exportPublic, e == exportPrivate:
			seen[key] = true
		case e == exportNone:
			r.errorf(CodeExportToInvalid, f, "exportTo \"~\" (visible to nobody) is allowed only on a ServiceEntry")
		case !isDNSLabel(e):
			r.errorf(CodeExportToInvalid, f, "exportTo entry %q is not \".\", \"*\", \"~\" or a namespace name (a DNS-1123 label)", e)
		default:
			seen[key] = true
		}
	}
	if seen[exportPublic] && len(entries) > 1 {
		r.errorf(CodeExportToPublicMix, field, "exportTo \"*\" already exports to every namespace and cannot be combined with other entries")
	}
	if seen[exportNone] && len(entries) > 1 {
		r.errorf(CodeExportToNoneMix, field, "exportTo \"~\" exports to nobody and cannot be combined with other entries")
	}
}
