package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/registry"
)

// decode reads YAML documents (namespace "default" unless they say) as the loader would.
func decode(t testing.TB, yaml string) []*config.Document {
	t.Helper()
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(yaml), "default", &order)
	if len(diags) > 0 {
		t.Fatalf("decode: %v", diags)
	}
	return docs
}

// serviceEntry is a ServiceEntry document declaring host on ports 80 (http) and 443 (tls) in ns.
func serviceEntry(ns, name, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s, namespace: %s}
spec:
  hosts: [%q]
  location: MESH_INTERNAL
  resolution: DNS
  ports:
  - {number: 80, name: http, protocol: HTTP}
  - {number: 443, name: tls, protocol: TLS}
---
`, name, ns, host)
}

// service finds the service for host declared in namespace ns.
func service(t *testing.T, snap *registry.Snapshot, ns, host string) *registry.Service {
	t.Helper()
	for _, s := range snap.Services {
		if s.Host == host && s.Namespace == ns {
			return s
		}
	}
	t.Fatalf("no service %s in namespace %s", host, ns)
	return nil
}

// sourceNames lists the applied rule's documents as ns/name.
func sourceNames(a *Applied) string {
	if a == nil {
		return ""
	}
	names := make([]string, len(a.Sources))
	for i, s := range a.Sources {
		names[i] = s.Namespace + "/" + s.Name
	}
	return strings.Join(names, ",")
}
