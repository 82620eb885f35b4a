package main

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/meshentry/meshentry/internal/policy"
)

// policyFlags say who the proxy is for DestinationRule lookup: the mesh root namespace and the
// workload's labels, which a rule's workloadSelector matches.
type policyFlags struct {
	rootNamespace string
	labels        string
}

func (p *policyFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&p.rootNamespace, "root-namespace", policy.DefaultRootNamespace, "the mesh root namespace, whose exported DestinationRules apply to every namespace")
	fl.StringVar(&p.labels, "labels", "", "this workload's labels, k=v,k=v, matched by DestinationRule workloadSelectors and VirtualService sourceLabels")
}

// parse checks both flags and returns the root namespace and the labels. An empty root namespace
// is Istio's default, istio-system, so flags that were never registered (tests) behave as defaults.
func (p *policyFlags) parse() (string, map[string]string, error) {
	labels, err := parseLabels(p.labels)
	if err != nil {
		return "", nil, err
	}
	root := p.rootNamespace
	if root == "" {
		root = policy.DefaultRootNamespace
	}
	return root, labels, nil
}

// parseLabels reads k=v,k=v as kubectl's --selector equality form; nil for "".
func parseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, usageError("--labels: %q is not key=value", kv)
		}
		if _, dup := out[k]; dup {
			return nil, usageError("--labels: key %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}
