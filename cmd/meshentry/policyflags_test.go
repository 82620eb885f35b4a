package main

import (
	"reflect"
	"testing"
)

func TestPolicyFlagsParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		root     string
		labels   string
		wantRoot string
		want     map[string]string
		wantErr  bool
	}{
		{name: "reads no labels as none", root: "istio-system", wantRoot: "istio-system"},
		{name: "reads k=v pairs with spaces around them", root: "mesh", labels: "app=web, version=v1", wantRoot: "mesh", want: map[string]string{"app": "web", "version": "v1"}},
		{name: "keeps an empty value", root: "mesh", labels: "canary=", wantRoot: "mesh", want: map[string]string{"canary": ""}},
		{name: "refuses a pair without =", root: "mesh", labels: "app", wantErr: true},
		{name: "refuses an empty key", root: "mesh", labels: "=web", wantErr: true},
		{name: "refuses a key given twice", root: "mesh", labels: "app=a,app=b", wantErr: true},
		{name: "reads an empty root namespace as Istio's default", root: "", wantRoot: "istio-system"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := policyFlags{rootNamespace: tt.root, labels: tt.labels}
			root, labels, err := p.parse()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if root != tt.wantRoot || !reflect.DeepEqual(labels, tt.want) {
				t.Errorf("parse = %q, %v; want %q, %v", root, labels, tt.wantRoot, tt.want)
			}
		})
	}
}
