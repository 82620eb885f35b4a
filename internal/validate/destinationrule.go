package validate

import (
	networking "istio.io/api/networking/v1alpha3"
)

// destinationRule applies the cheap, certain part of Istio's ValidateDestinationRule: the host,
// subset names and exportTo. Traffic policies are left for a later issue.
func destinationRule(r *report, dr *networking.DestinationRule) {
	switch {
	case dr.Host == "":
		r.errorf(CodeDestinationRuleHost, "spec.host", "host is required")
	default:
		if p := hostProblem(dr.Host, true); p != "" {
			r.errorf(CodeDestinationRuleHost, "spec.host", "host %q %s", dr.Host, p)
		}
	}
	seen := map[string]int{}
	for i, s := range dr.Subsets {
		f := at("spec.subsets", i, ".name")
		switch {
		case s == nil:
			r.errorf(CodeDestinationRuleSubset, at("spec.subsets", i, ""), "a subset may not be null")
			continue
		case s.Name == "":
			r.errorf(CodeDestinationRuleSubset, f, "subset name is required")
		case !isDNSLabel(s.Name):
			r.errorf(CodeDestinationRuleSubset, f, "subset name %q is not a DNS-1123 label", s.Name)
		}
		if j, dup := seen[s.Name]; dup {
			r.errorf(CodeDestinationRuleSubset, f, "subset name %q is already used by spec.subsets[%d]", s.Name, j)
		} else {
			seen[s.Name] = i
		}
	}
	exportTo(r, "spec.exportTo", dr.ExportTo, false)
}
