package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the loader: it may report anything, but must not panic, and
// every finding must carry the file name.
func FuzzDecode(f *testing.F) {
	examples, _ := filepath.Glob("../../testdata/validate/examples/*.yaml")
	published, _ := filepath.Glob("../../testdata/published/*.yaml")
	examples = append(examples, published...)
	for _, p := range examples {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a.com], ports: [{number: 80, name: http}], endpoints: [{address: 1.2.3.4, ports: {http: 8080}}]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("{\"apiVersion\": \"networking.istio.io/v1\", \"kind\": \"Gateway\", \"metadata\": {\"name\": \"g\"}, \"spec\": {\"servers\": [{\"port\": {\"number\": 1e3}}]}}"))
	f.Add([]byte("---\n---\n\t\n"))
	f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a, namespace: x, namespace: y}\nspec: {hosts: [a.com]}\nspec: {hosts: [b.com]}\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata: {name: a}\n  spec: {hosts: [a.com]}\n- &i {apiVersion: apps/v1, kind: Deployment}\n- *i\n"))
	f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: DestinationRuleList\nitems: [{metadata: {name: d}, spec: {host: a.com, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 1m30s}}, outlierDetection: {interval: -0.5s, baseEjectionTime: 10}}}}]\n"))
	// Merge keys: one mapping, a list of them, merges of merges, a self-merge, and values that are
	// not mappings.
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: a}, spec: &s {hosts: [a.com], resolution: DNS}}\n- {apiVersion: networking.istio.io/v1, kind: ServiceEntry, metadata: {name: b}, spec: {<<: *s, hosts: [b.com]}}\n"))
	f.Add([]byte("<<: [{apiVersion: networking.istio.io/v1}, {kind: ServiceEntry, apiVersion: x}]\nmetadata: {<<: {name: a}}\nspec: {<<: &o {<<: &i {hosts: [i.com]}, ports: [{<<: {number: 80}, name: http}]}, hosts: [a.com]}\n"))
	f.Add([]byte("&d\n<<: *d\nspec: &s {<<: [*s, *d]}\n"))
	f.Add([]byte("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {<<: 5, <<: [[], ~], '<<': x}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		order := 0
		docs, diags := Decode("fuzz.yaml", bytes.NewReader(data), "default", &order)
		for _, d := range diags {
			if d.File != "fuzz.yaml" || d.Message == "" {
				t.Fatalf("finding without file or message: %+v", d)
			}
		}
		for _, d := range docs {
			if d.Spec == nil || d.Name == "" {
				t.Fatalf("document without spec or name: %+v", d)
			}
		}
	})
}
