package kube

import (
	"strings"
	"testing"
)

func TestWriteRBAC(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		rbac    RBAC
		want    []string
		wantNot []string
	}{
		{name: "a cluster-wide role grants read and status patch to the service account",
			rbac: RBAC{Name: "me", ServiceAccount: "sa", ServiceAccountNamespace: "mesh", WriteStatus: true},
			want: []string{"kind: ClusterRole\n", "kind: ClusterRoleBinding\n", "verbs: [get, list, watch]", "serviceentries/status", "verbs: [patch]",
				"kind: ServiceAccount\n  name: sa\n  namespace: mesh"},
			wantNot: []string{"kind: Role\n", "kind: RoleBinding\n"}},
		{name: "a read-only role has no status rule",
			rbac:    RBAC{Name: "me", ServiceAccount: "sa", ServiceAccountNamespace: "mesh"},
			want:    []string{"verbs: [get, list, watch]"},
			wantNot: []string{"/status", "patch", "update"}},
		{name: "a namespaced role and binding for one watched namespace, bound to a user",
			rbac:    RBAC{Name: "me", User: "vm-proxy", Namespace: "team-a", WriteStatus: true},
			want:    []string{"kind: Role\nmetadata:\n  name: me\n  namespace: team-a", "kind: RoleBinding\n", "kind: User\n  name: vm-proxy"},
			wantNot: []string{"ClusterRole", "ServiceAccount"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b strings.Builder
			if err := WriteRBAC(&b, tc.rbac); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			for _, k := range kinds {
				if !strings.Contains(out, k.resource) {
					t.Errorf("output lacks resource %s", k.resource)
				}
			}
		})
	}
}
