package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/diag"
)

// summary renders what Load read from one file as "Kind ns/name@line" for documents and
// "level code line Kind: message" for findings, so that a table can state both.
func summary(res Result) (docs, findings []string) {
	for _, d := range res.Documents {
		docs = append(docs, fmt.Sprintf("%s %s/%s@%d", d.Kind, d.Namespace, d.Name, d.Line))
	}
	for _, d := range res.Diagnostics {
		findings = append(findings, fmt.Sprintf("%s %s %d %s %s", d.Level, d.Code, d.Line, d.Kind, d.Field))
	}
	return docs, findings
}

func TestLoadReadsListsItemByItemAndSkipsOtherKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		file         string
		wantDocs     []string
		wantFindings []string
		wantRead     int
	}{
		{
			name:         "reads the items of a kubectl List, each at its own line, and rejects only the bad one",
			file:         "kubectl-list.yaml",
			wantDocs:     []string{"ServiceEntry shop/external-api@5", "DestinationRule shop/external-api@32"},
			wantFindings: []string{"error ME0002 31 ServiceEntry spec.resolutoin", "info ME0003 43 Service "},
			wantRead:     3,
		},
		{
			name:     "reads a ServiceEntryList whose items leave out kind and apiVersion",
			file:     "serviceentry-list.yaml",
			wantDocs: []string{"ServiceEntry data/db@7", "ServiceEntry data/cache@18"},
			wantRead: 2,
		},
		{
			name:     "skips Kubernetes kinds with a note and Istio kinds meshentry does not read with a warning",
			file:     "mixed-kinds.yaml",
			wantDocs: []string{"ServiceEntry default/httpbin@21"},
			wantFindings: []string{
				"info ME0003 2 Deployment ", "info ME0003 14 ConfigMap ",
				"warning ME0004 31 WorkloadEntry ", "warning ME0004 38 AuthorizationPolicy ",
			},
			wantRead: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Load([]string{"../../testdata/published/" + tc.file}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			docs, findings := summary(res)
			if strings.Join(docs, "; ") != strings.Join(tc.wantDocs, "; ") {
				t.Errorf("documents:\n got %q\nwant %q", docs, tc.wantDocs)
			}
			if strings.Join(findings, "; ") != strings.Join(tc.wantFindings, "; ") {
				t.Errorf("findings:\n got %q\nwant %q\n%v", findings, tc.wantFindings, res.Diagnostics)
			}
			if res.Read != tc.wantRead {
				t.Errorf("read %d documents, want %d", res.Read, tc.wantRead)
			}
		})
	}
}

func TestDecodeRefusesMalformedLists(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		input     string
		wantLine  int
		wantField string
		wantMsg   string
	}{
		{name: "rejects items that are not a list", input: "apiVersion: v1\nkind: List\nitems: {a: b}\n", wantLine: 3, wantField: "items", wantMsg: "expected a list"},
		{name: "rejects an unknown field beside items", input: "apiVersion: v1\nkind: List\nitem: []\n", wantLine: 3, wantField: "item", wantMsg: `unknown field "item"`},
		{name: "rejects items set twice", input: "apiVersion: v1\nkind: List\nitems: []\nitems: []\n", wantLine: 4, wantField: "items", wantMsg: "already set at line 3"},
		{name: "rejects a List item whose kind is misspelt in an Istio group", input: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: ServiceEntyr\n  metadata: {name: a}\n  spec: {}\n", wantLine: 5, wantField: "kind", wantMsg: `unsupported kind "ServiceEntyr"`},
		{name: "rejects an item of a typed list that names another kind's fields", input: "apiVersion: networking.istio.io/v1\nkind: DestinationRuleList\nitems:\n- metadata: {name: a}\n  spec: {hosts: [a.com]}\n", wantLine: 5, wantField: "spec.hosts", wantMsg: `unknown field "hosts"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order := 0
			docs, diags := Decode("in.yaml", strings.NewReader(tc.input), "default", &order)
			errs, _, _ := diag.Split(diags)
			if len(docs) != 0 || len(errs) == 0 {
				t.Fatalf("got %d documents and findings %v, want an error and no document", len(docs), diags)
			}
			d := errs[0]
			if d.Line != tc.wantLine || d.Field != tc.wantField || !strings.Contains(d.Message, tc.wantMsg) {
				t.Fatalf("got %s (line %d, field %q), want line %d field %q message containing %q", d, d.Line, d.Field, tc.wantLine, tc.wantField, tc.wantMsg)
			}
		})
	}
}
