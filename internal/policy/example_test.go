package policy_test

import (
	"fmt"
	"strings"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/policy"
	"github.com/meshentry/meshentry/internal/registry"
)

// The proxy builds one Index beside each snapshot and asks it per service port.
func ExampleIndex_For() {
	const yaml = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.shop.test]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: mesh-tls, namespace: istio-system}
spec:
  host: "*.test"
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: {mode: SIMPLE}
`
	order := 0
	docs, _ := config.Decode("example.yaml", strings.NewReader(yaml), "default", &order)
	snap := registry.Build(docs, 1)
	idx := policy.Build(snap.Documents, policy.DefaultRootNamespace)
	if a, ok := idx.For(snap.Services[0], 80, policy.Proxy{Namespace: "web"}); ok {
		fmt.Println(a.Sources[0].Namespace + "/" + a.Sources[0].Name)
		fmt.Println(a.Traffic.GetTls().GetMode())
		fmt.Println(a.Why())
	}
	// Output:
	// istio-system/mesh-tls
	// SIMPLE
	// most specific host *.test in namespace istio-system (root); its portLevelSettings for port 80 replace the whole top-level policy there (what they omit takes the default)
}
