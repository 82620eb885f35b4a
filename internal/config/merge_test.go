package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
)

const mergeHead = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"

func TestDecodeExpandsMergeKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		input      string
		wantDocs   int
		doc        int    // which document check looks at
		wantHosts  string // hosts of that document, joined by ","
		wantRes    networking.ServiceEntry_Resolution
		wantPorts  string // number/name of each port, joined by ","
		linePath   string // a field path whose line is checked, when set
		wantLine   int
		wantLabels string // metadata.labels as k=v joined by ",", when set
	}{
		{
			name: "adds the keys of the merged mapping the entry does not set",
			input: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata: {name: a}\n  spec: &base\n    hosts: [a.example.com]\n" +
				"    ports: [{number: 80, name: http, protocol: HTTP}]\n    resolution: DNS\n" +
				"- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata: {name: b}\n  spec:\n    <<: *base\n    hosts: [b.example.com]\n",
			wantDocs: 2, doc: 1, wantHosts: "b.example.com", wantRes: networking.ServiceEntry_DNS, wantPorts: "80/http",
			linePath: "spec.ports", wantLine: 9,
		},
		{
			name:     "lets a key written before the merge key win over the merged one",
			input:    mergeHead + "metadata: {name: a}\nspec:\n  hosts: [own.com]\n  <<: {hosts: [base.com], resolution: DNS}\n",
			wantDocs: 1, wantHosts: "own.com", wantRes: networking.ServiceEntry_DNS,
			linePath: "spec.hosts", wantLine: 5,
		},
		{
			name:     "lets the earlier of a list of merged mappings win",
			input:    mergeHead + "metadata: {name: a}\nspec:\n  <<:\n  - {hosts: [first.com]}\n  - {hosts: [second.com], resolution: DNS}\n",
			wantDocs: 1, wantHosts: "first.com", wantRes: networking.ServiceEntry_DNS,
			linePath: "spec.hosts", wantLine: 6,
		},
		{
			name:     "expands a merged mapping's own merge key",
			input:    mergeHead + "metadata: {name: a}\nspec:\n  <<: &outer\n    <<: &inner {resolution: DNS, hosts: [inner.com]}\n    hosts: [outer.com]\n",
			wantDocs: 1, wantHosts: "outer.com", wantRes: networking.ServiceEntry_DNS,
			linePath: "spec.resolution", wantLine: 6,
		},
		{
			name: "expands merge keys in list items deep in the spec",
			input: mergeHead + "metadata: {name: a}\nspec:\n  hosts: [a.com]\n  ports:\n  - &p {number: 80, name: http, protocol: HTTP}\n" +
				"  - <<: *p\n    number: 8080\n    name: http-alt\n",
			wantDocs: 1, wantHosts: "a.com", wantPorts: "80/http,8080/http-alt",
			linePath: "spec.ports[1].protocol", wantLine: 7,
		},
		{
			name:     "expands merge keys in metadata",
			input:    mergeHead + "metadata:\n  name: a\n  labels:\n    <<: {team: web, tier: front}\n    tier: back\nspec: {hosts: [a.com]}\n",
			wantDocs: 1, wantHosts: "a.com", wantLabels: "team=web,tier=back",
		},
		{
			name:     "reads apiVersion and kind brought in by a top-level merge key",
			input:    "<<: {apiVersion: networking.istio.io/v1, kind: ServiceEntry}\nmetadata: {name: a}\nspec: {hosts: [a.com]}\n",
			wantDocs: 1, wantHosts: "a.com",
		},
		{
			name:     "reads the items of a List brought in by a merge key",
			input:    "<<: {apiVersion: v1, kind: List}\nitems:\n- " + strings.ReplaceAll(mergeHead, "\n", "\n  ") + "metadata: {name: a}\n  spec: {hosts: [a.com]}\n",
			wantDocs: 1, wantHosts: "a.com",
		},
		{
			name:     "takes a quoted << as an ordinary key",
			input:    mergeHead + "metadata:\n  name: a\n  labels: {'<<': x}\nspec: {hosts: [a.com]}\n",
			wantDocs: 1, wantHosts: "a.com", wantLabels: "<<=x",
		},
		{
			name:     "keeps a quoted << that a merge key brings in",
			input:    mergeHead + "metadata:\n  name: a\n  labels: {<<: {'<<': x, team: web}}\nspec: {hosts: [a.com]}\n",
			wantDocs: 1, wantHosts: "a.com", wantLabels: "<<=x,team=web",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order := 0
			docs, diags := Decode("m.yaml", strings.NewReader(tc.input), "default", &order)
			if len(diags) > 0 || len(docs) != tc.wantDocs {
				t.Fatalf("got %d documents and findings %v, want %d documents and no finding", len(docs), diags, tc.wantDocs)
			}
			doc := docs[tc.doc]
			se := doc.ServiceEntry()
			var ports []string
			for _, p := range se.GetPorts() {
				ports = append(ports, fmt.Sprintf("%d/%s", p.GetNumber(), p.GetName()))
			}
			got := fmt.Sprintf("hosts %s, resolution %s, ports %s", strings.Join(se.GetHosts(), ","), se.GetResolution(), strings.Join(ports, ","))
			want := fmt.Sprintf("hosts %s, resolution %s, ports %s", tc.wantHosts, tc.wantRes, tc.wantPorts)
			if got != want {
				t.Errorf("got %s, want %s", got, want)
			}
			if tc.linePath != "" && doc.LineOf(tc.linePath) != tc.wantLine {
				t.Errorf("line of %s is %d, want %d, where it is written", tc.linePath, doc.LineOf(tc.linePath), tc.wantLine)
			}
			if tc.wantLabels != "" {
				var labels []string
				for _, k := range []string{"<<", "team", "tier"} {
					if v, ok := doc.Labels[k]; ok {
						labels = append(labels, k+"="+v)
					}
				}
				if strings.Join(labels, ",") != tc.wantLabels || len(labels) != len(doc.Labels) {
					t.Errorf("labels %v, want %s", doc.Labels, tc.wantLabels)
				}
			}
		})
	}
}

func TestDecodeRefusesBadMergeKeys(t *testing.T) {
	t.Parallel()
	head := mergeHead + "metadata: {name: a}\n"
	tests := []struct {
		name      string
		input     string
		wantLine  int
		wantField string
		wantMsg   string
	}{
		{name: "refuses a merge key whose value is a scalar", input: head + "spec:\n  <<: 5\n", wantLine: 5, wantField: "spec.<<", wantMsg: "takes a mapping or a list of mappings"},
		{name: "refuses a merge key without a value", input: head + "spec:\n  <<:\n  hosts: [a.com]\n", wantLine: 5, wantField: "spec.<<", wantMsg: "takes a mapping or a list of mappings"},
		{name: "refuses a merged list item that is not a mapping", input: head + "spec:\n  <<: [{hosts: [a.com]}, [a]]\n", wantLine: 5, wantField: "spec.<<", wantMsg: "takes a mapping or a list of mappings"},
		{name: "refuses two merge keys in one mapping", input: head + "spec:\n  <<: {hosts: [a.com]}\n  <<: {hosts: [b.com]}\n", wantLine: 6, wantField: "spec.<<", wantMsg: `duplicate key "<<": already set at line 5`},
		{name: "refuses a mapping that merges itself", input: head + "spec: &s\n  hosts: [a.com]\n  <<: *s\n", wantLine: 1, wantMsg: "as an alias or merge key inside the value it names is"},
		{name: "refuses a document that merges itself", input: "&d\n<<: *d\n" + head + "spec: {hosts: [a.com]}\n", wantLine: 1, wantMsg: "as an alias or merge key inside the value it names is"},
		{name: "still refuses a key its own mapping sets twice beside a merge key", input: head + "spec:\n  <<: {resolution: DNS}\n  hosts: [a.com]\n  hosts: [b.com]\n", wantLine: 7, wantField: "spec.hosts", wantMsg: `duplicate key "hosts": already set at line 6`},
		{name: "names a misspelt merged field where it is written", input: head + "spec:\n  <<:\n    resolutoin: DNS\n  hosts: [a.com]\n", wantLine: 6, wantField: "spec.resolutoin", wantMsg: `unknown field "resolutoin"`},
		{name: "refuses merge keys that expand past the value limit", input: mergeBomb, wantLine: 1, wantMsg: "too large once its YAML aliases are expanded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			order := 0
			docs, diags := Decode("in.yaml", strings.NewReader(tc.input), "default", &order)
			if len(docs) != 0 || len(diags) != 1 {
				t.Fatalf("got %d documents and findings %v, want only one finding", len(docs), diags)
			}
			d := diags[0]
			if d.Line != tc.wantLine || d.Field != tc.wantField || !strings.Contains(d.Message, tc.wantMsg) {
				t.Fatalf("got %s (line %d, field %q), want line %d field %q message containing %q", d, d.Line, d.Field, tc.wantLine, tc.wantField, tc.wantMsg)
			}
			if el := time.Since(start); el > 2*time.Second {
				t.Fatalf("took %v to refuse", el)
			}
		})
	}
}

// mergeBomb is a few kilobytes whose endpoints each merge a mapping of two thousand labels.
var mergeBomb = func() string {
	var b strings.Builder
	b.WriteString(mergeHead + "metadata:\n  name: a\n  annotations:\n    x: &l {")
	for i := range 2000 {
		fmt.Fprintf(&b, "k%d: v, ", i)
	}
	b.WriteString("}\nspec:\n  hosts: [a.com]\n  endpoints:\n")
	for range 1000 {
		b.WriteString("  - {address: 1.2.3.4, labels: {<<: *l}}\n")
	}
	return b.String()
}()

func TestDecodeDropsOnlyTheListItemWithABadMergeKey(t *testing.T) {
	t.Parallel()
	item := "- apiVersion: networking.istio.io/v1\n  kind: ServiceEntry\n  metadata: {name: %s}\n  spec: {<<: %s}\n"
	input := "apiVersion: v1\nkind: List\nitems:\n" + fmt.Sprintf(item, "good", "{hosts: [a.com]}") + fmt.Sprintf(item, "bad", "[1]")
	order := 0
	docs, diags := Decode("l.yaml", strings.NewReader(input), "default", &order)
	if len(docs) != 1 || docs[0].Name != "good" || len(diags) != 1 || diags[0].Line != 11 {
		t.Fatalf("got %d documents and findings %v, want the good item and one finding at line 11", len(docs), diags)
	}
}
