// Package policy decides which DestinationRule applies to a service port for a proxy, as Istio's
// push context and sidecar scope decide it, and hands out the merged traffic policy.
package policy

import (
	"fmt"
	"sort"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/meshentry/meshentry/internal/registry"
)

// DefaultRootNamespace is Istio's default mesh config root namespace.
const DefaultRootNamespace = "istio-system"

// Proxy is the workload whose outbound traffic a policy applies to.
type Proxy struct {
	Namespace string
	Labels    map[string]string
}

// Scope says where the lookup found the rule, in the order Istio searches.
type Scope uint8

const (
	// ScopeProxy is the proxy's own namespace (private and public rules alike).
	ScopeProxy Scope = iota + 1
	// ScopeService is the service's namespace, rules exported to the proxy's namespace.
	ScopeService
	// ScopeRoot is the root namespace, rules exported to the proxy's namespace.
	ScopeRoot
)

// Source is one DestinationRule document that went into an applied policy.
type Source struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
}

// String is "namespace/name (file:line)", or "namespace/name" when the file is unknown.
func (s Source) String() string {
	if s.File == "" {
		return s.Namespace + "/" + s.Name
	}
	return fmt.Sprintf("%s/%s (%s:%d)", s.Namespace, s.Name, s.File, s.Line)
}

// Subset is one subset of the applied rule with its own merged policy for the port.
type Subset struct {
	Name   string
	Labels map[string]string
	// Traffic is the rule's policy overridden by the subset's, for this port; nil when neither sets one.
	Traffic *networking.TrafficPolicy
}

// Applied is the DestinationRule that applies to one service port for one proxy. Its policies are
// shared by every lookup of the snapshot: read them, never change them.
type Applied struct {
	// Host is the rule's host as it matched (a short name already expanded).
	Host string
	// Traffic is the effective policy for the port (portLevelSettings applied), nil when unset.
	Traffic *networking.TrafficPolicy
	Subsets []Subset
	// Sources are the documents merged into the rule, the one whose traffic policy wins first.
	Sources []Source
	// Scope is where the rule was found; Selector is set when its workloadSelector chose it.
	Scope     Scope
	Namespace string
	Selector  map[string]string
	// PortLevel is the port number when the rule's portLevelSettings entry for it replaced the
	// top-level policy, else 0.
	PortLevel uint32
	// exact is false when the rule's host is a wildcard.
	exact bool
	root  bool
}

// Why says in one line why this rule applies, e.g. "most specific host *.example.com in namespace
// istio-system (root)".
func (a *Applied) Why() string {
	host := "exact host " + a.Host
	if !a.exact {
		host = "most specific host " + a.Host
	}
	where := fmt.Sprintf("namespace %s", a.Namespace)
	switch a.Scope {
	case ScopeProxy:
		where += " (the proxy's own)"
		if a.root {
			where = fmt.Sprintf("namespace %s (the proxy's own, the root)", a.Namespace)
		}
	case ScopeService:
		where += " (the service's, exported to the proxy's namespace)"
	case ScopeRoot:
		where += " (root)"
	}
	s := host + " in " + where
	if len(a.Selector) > 0 {
		s += "; its workloadSelector " + LabelString(a.Selector) + " matches the proxy's labels"
	}
	if a.PortLevel != 0 {
		s += fmt.Sprintf("; its portLevelSettings for port %d replace the whole top-level policy there (what they omit takes the default)", a.PortLevel)
	}
	if len(a.Sources) > 1 {
		s += fmt.Sprintf("; %d DestinationRules for this host merged (subsets joined, the oldest traffic policy wins)", len(a.Sources))
	}
	return s
}

// Subset returns the subset with this name, or nil.
func (a *Applied) Subset(name string) *Subset {
	for i := range a.Subsets {
		if a.Subsets[i].Name == name {
			return &a.Subsets[i]
		}
	}
	return nil
}

// LabelString writes labels as k=v,k=v in key order, as --labels takes them.
func LabelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

// Index holds the DestinationRules of one snapshot, merged and grouped as Istio's push context
// groups them. It is immutable once built and safe for concurrent use.
type Index struct {
	root string
	// local: every rule visible in its own namespace; exported: rules exported beyond it;
	// rootLocal: the root namespace's private rules.
	local     map[string]*pool
	exported  map[string]*pool
	rootLocal *pool
}

// For returns the DestinationRule that applies to port of svc for proxy, and false when none does.
// The lookup does not allocate.
func (x *Index) For(svc *registry.Service, port uint32, proxy Proxy) (*Applied, bool) {
	if x == nil || svc == nil {
		return nil, false
	}
	host := registry.NormalizeHost(svc.Host)
	// Istio searches the root namespace's private rules in place of the proxy's namespace when the
	// proxy runs in the root namespace, so that exportTo "." there is not ignored.
	local, scope := x.local[proxy.Namespace], ScopeProxy
	if proxy.Namespace == x.root {
		local = x.rootLocal
	}
	if rules := local.match(host); len(rules) > 0 {
		// As in Istio, rules found here end the search even when none is chosen: a workloadSelector
		// rule that does not select this proxy hides the service's and the root's rules from it.
		if r := choose(rules, proxy); r != nil {
			return r.applied(port, scope), true
		}
		return nil, false
	}
	for _, step := range [...]struct {
		ns    string
		scope Scope
	}{{svc.Namespace, ScopeService}, {x.root, ScopeRoot}} {
		// Exported rules never carry a workloadSelector, so Istio's choice among the visible ones
		// is its catch-all: the last of them.
		var last *rule
		for _, r := range x.exported[step.ns].match(host) {
			if r.exportedTo(proxy.Namespace) {
				last = r
			}
		}
		if last != nil {
			return last.applied(port, step.scope), true
		}
	}
	return nil, false
}

// choose is Istio's SidecarScope.DestinationRule: a rule of the proxy's namespace whose
// workloadSelector matches the proxy's labels wins, else the last rule without a selector.
func choose(rules []*rule, proxy Proxy) *rule {
	var catchAll *rule
	for _, r := range rules {
		if r.selector == nil {
			catchAll = r
			continue
		}
		if r.namespace == proxy.Namespace && subsetOf(r.selector, proxy.Labels) {
			return r
		}
	}
	return catchAll
}

func subsetOf(want, have map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}
