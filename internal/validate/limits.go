package validate

import (
	networking "istio.io/api/networking/v1alpha3"
)

// Size limits from the ServiceEntry CRD schema (istio.io/api service_entry.proto and
// workload_entry.proto); the Kubernetes API server enforces them before Istio's webhook runs.
const (
	maxHosts              = 256
	maxAddresses          = 256
	maxAddressLen         = 64
	maxPorts              = 256
	maxEndpoints          = 4096
	maxEndpointAddressLen = 256
	maxEndpointPorts      = 128
	maxEndpointLabels     = 256
	maxNetworkLen         = 2048
	maxLocalityLen        = 2048
	maxServiceAccountLen  = 253
	maxSelectorLabels     = 256
	maxSelectorValueLen   = 63
)

func serviceEntryLimits(r *report, se *networking.ServiceEntry) {
	tooMany(r, "spec.hosts", len(se.Hosts), maxHosts)
	tooMany(r, "spec.addresses", len(se.Addresses), maxAddresses)
	for i, a := range se.Addresses {
		tooLongAt(r, "spec.addresses", i, "", a, maxAddressLen)
	}
	tooMany(r, "spec.ports", len(se.Ports), maxPorts)
	tooMany(r, "spec.endpoints", len(se.Endpoints), maxEndpoints)
	for i, ep := range se.Endpoints {
		if ep == nil {
			continue
		}
		const list = "spec.endpoints"
		tooLongAt(r, list, i, ".address", ep.Address, maxEndpointAddressLen)
		tooManyAt(r, list, i, ".ports", len(ep.Ports), maxEndpointPorts)
		tooManyAt(r, list, i, ".labels", len(ep.Labels), maxEndpointLabels)
		tooLongAt(r, list, i, ".network", ep.Network, maxNetworkLen)
		tooLongAt(r, list, i, ".locality", ep.Locality, maxLocalityLen)
		tooLongAt(r, list, i, ".serviceAccount", ep.ServiceAccount, maxServiceAccountLen)
	}
	if sel := se.WorkloadSelector; sel != nil {
		tooMany(r, "spec.workloadSelector.labels", len(sel.Labels), maxSelectorLabels)
		for _, k := range sortedKeys(sel.Labels) {
			tooLong(r, "spec.workloadSelector.labels."+k, sel.Labels[k], maxSelectorValueLen)
		}
	}
}

func tooMany(r *report, field string, n, limit int) {
	if n > limit {
		r.errorf(CodeSchemaLimit, field, "has %d entries; Istio's schema allows at most %d", n, limit)
	}
}

// tooManyAt is tooMany for the field at(list, i, suffix), spelled only for a finding: the
// checks run on every endpoint of every entry and nearly all pass.
func tooManyAt(r *report, list string, i int, suffix string, n, limit int) {
	if n > limit {
		tooMany(r, at(list, i, suffix), n, limit)
	}
}

// tooLongAt is tooLong for the field at(list, i, suffix), spelled only for a finding.
func tooLongAt(r *report, list string, i int, suffix, s string, limit int) {
	if len(s) > limit {
		tooLong(r, at(list, i, suffix), s, limit)
	}
}

func tooLong(r *report, field, s string, limit int) {
	if len(s) > limit {
		r.errorf(CodeSchemaLimit, field, "is %d characters long; Istio's schema allows at most %d", len(s), limit)
	}
}
