package validate

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// destinationRule applies Istio's ValidateDestinationRule: the host, the traffic policy and its
// port levels, the subsets with their labels and policies, exportTo and the workloadSelector.
func destinationRule(r *report, dr *networking.DestinationRule) {
	switch {
	case dr.Host == "":
		r.errorf(CodeDestinationRuleHost, "spec.host", "host is required")
	default:
		if p := hostProblem(dr.Host, true); p != "" {
			r.errorf(CodeDestinationRuleHost, "spec.host", "host %q %s", dr.Host, p)
		}
	}
	trafficPolicy(r, "spec.trafficPolicy", dr.TrafficPolicy)
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
		endpointLabels(r, at("spec.subsets", i, ""), s.Labels)
		trafficPolicy(r, at("spec.subsets", i, ".trafficPolicy"), s.TrafficPolicy)
	}
	exportTo(r, "spec.exportTo", dr.ExportTo, false)
	ruleSelector(r, dr)
}

// ruleSelector checks a DestinationRule's workloadSelector as Istio's validateWorkloadSelector does.
func ruleSelector(r *report, dr *networking.DestinationRule) {
	sel := dr.GetWorkloadSelector()
	if sel == nil {
		return
	}
	for _, k := range sortedKeys(sel.MatchLabels) {
		v := sel.MatchLabels[k]
		f := "spec.workloadSelector.matchLabels." + k
		if k == "" {
			r.errorf(CodeSelectorEmptyKey, f, "workloadSelector label %q has an empty key", k+"="+v)
		}
		if strings.Contains(k, "*") || strings.Contains(v, "*") {
			r.errorf(CodeSelectorWildcard, f, "workloadSelector label %q uses a wildcard, which selectors do not support", k+"="+v)
		}
	}
	if len(sel.MatchLabels) == 0 {
		r.warnf(CodeSelectorNoLabels, "spec.workloadSelector", "workloadSelector has no labels, so it selects every proxy in namespace %q", r.doc.Namespace)
	}
	// A rule that selects workloads applies only in its own namespace, so exportTo may name no other.
	own, other := false, 0
	for _, e := range dr.ExportTo {
		if e == exportPrivate || e == r.doc.Namespace {
			own = true
		} else {
			other++
		}
	}
	switch {
	case len(dr.ExportTo) == 0:
	case !own:
		r.errorf(CodeSelectorExportTo, "spec.exportTo", "a DestinationRule with a workloadSelector cannot be exported beyond its namespace %q", r.doc.Namespace)
	case other > 0:
		r.errorf(CodeSelectorExportTo, "spec.exportTo", "a DestinationRule with a workloadSelector cannot have several exportTo entries; use [\".\"]")
	}
}
