package kube

import (
	"fmt"
	"io"
	"strings"
)

// RBAC says whom the printed role is for and what it grants.
type RBAC struct {
	// Name names the role and its binding.
	Name string
	// ServiceAccount and ServiceAccountNamespace name the subject; User, when set, names a user
	// instead (a token-file or certificate user on a VM).
	ServiceAccount, ServiceAccountNamespace, User string
	// Namespace, when set, makes a Role and RoleBinding in it, for --kube-namespace; empty makes
	// a ClusterRole and ClusterRoleBinding.
	Namespace string
	// WriteStatus adds patch on the status subresources; without it the role only reads.
	WriteStatus bool
}

// WriteRBAC prints the minimal role and binding as a YAML stream: get, list and watch on the five
// kinds, and patch on their status (the merge patch the status writer sends) when WriteStatus.
func WriteRBAC(w io.Writer, r RBAC) error {
	var resources, statuses []string
	for _, k := range kinds {
		resources = append(resources, k.resource)
		statuses = append(statuses, k.resource+"/status")
	}
	roleKind, bindingKind, meta := "ClusterRole", "ClusterRoleBinding", fmt.Sprintf("  name: %s\n", r.Name)
	if r.Namespace != "" {
		roleKind, bindingKind = "Role", "RoleBinding"
		meta += fmt.Sprintf("  namespace: %s\n", r.Namespace)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: rbac.authorization.k8s.io/v1\nkind: %s\nmetadata:\n%srules:\n", roleKind, meta)
	fmt.Fprintf(&b, "- apiGroups: [%s]\n  resources: [%s]\n  verbs: [get, list, watch]\n", Group, strings.Join(resources, ", "))
	if r.WriteStatus {
		fmt.Fprintf(&b, "- apiGroups: [%s]\n  resources: [%s]\n  verbs: [patch]\n", Group, strings.Join(statuses, ", "))
	}
	fmt.Fprintf(&b, "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: %s\nmetadata:\n%s", bindingKind, meta)
	fmt.Fprintf(&b, "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: %s\n  name: %s\nsubjects:\n", roleKind, r.Name)
	if r.User != "" {
		fmt.Fprintf(&b, "- apiGroup: rbac.authorization.k8s.io\n  kind: User\n  name: %s\n", r.User)
	} else {
		fmt.Fprintf(&b, "- kind: ServiceAccount\n  name: %s\n  namespace: %s\n", r.ServiceAccount, r.ServiceAccountNamespace)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
