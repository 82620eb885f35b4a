package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDecodeReportsBadDocuments(t *testing.T) {
	t.Parallel()
	const head = "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata:\n  name: x\n"
	tests := []struct {
		name      string
		input     string
		wantLine  int
		wantField string
		wantMsg   string
	}{
		{name: "names a misspelt field with its line and a suggestion", input: head + "spec:\n  hosts: [a.com]\n  resolutoin: DNS\n", wantLine: 7, wantField: "spec.resolutoin", wantMsg: `unknown field "resolutoin" (did you mean "resolution"?)`},
		{name: "names an unknown field deep in a list", input: head + "spec:\n  hosts: [a.com]\n  ports:\n  - number: 80\n    nmae: http\n", wantLine: 9, wantField: "spec.ports[0].nmae", wantMsg: `unknown field "nmae"`},
		{name: "rejects a port number that is not a number", input: head + "spec:\n  ports:\n  - number: eighty\n", wantLine: 7, wantField: "spec.ports[0].number", wantMsg: "expected a whole number"},
		{name: "rejects a negative port number", input: head + "spec:\n  ports:\n  - number: -1\n", wantLine: 7, wantField: "spec.ports[0].number", wantMsg: "expected a whole number"},
		{name: "rejects an unknown enum value and lists the valid ones", input: head + "spec:\n  resolution: DSN\n", wantLine: 6, wantField: "spec.resolution", wantMsg: `unknown value "DSN" (want NONE, STATIC, DNS, DNS_ROUND_ROBIN`},
		{name: "rejects a number where a string belongs", input: head + "spec:\n  hosts: [42]\n", wantLine: 6, wantField: "spec.hosts[0]", wantMsg: "expected a string"},
		{name: "rejects a scalar where a list belongs", input: head + "spec:\n  hosts: a.com\n", wantLine: 6, wantField: "spec.hosts", wantMsg: "expected a list"},
		{name: "rejects an unknown kind", input: "apiVersion: networking.istio.io/v1\nkind: WorkloadThing\nmetadata: {name: x}\nspec: {}\n", wantLine: 2, wantField: "kind", wantMsg: `unsupported kind "WorkloadThing"`},
		{name: "rejects another API group", input: "apiVersion: v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {}\n", wantLine: 1, wantField: "apiVersion", wantMsg: `unsupported apiVersion "v1"`},
		{name: "requires metadata.name", input: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {namespace: x}\nspec: {}\n", wantLine: 1, wantField: "metadata.name", wantMsg: "metadata.name is required"},
		{name: "requires a spec", input: head, wantLine: 1, wantField: "spec", wantMsg: "spec is required"},
		{name: "rejects an unknown top-level field", input: head + "specs: {}\n", wantLine: 5, wantField: "specs", wantMsg: `unknown field "specs"`},
		{name: "rejects an unknown metadata field", input: head + "  nmespace: x\nspec: {}\n", wantLine: 5, wantField: "metadata.nmespace", wantMsg: `unknown field "nmespace"`},
		{name: "rejects a malformed creationTimestamp", input: head + "  creationTimestamp: yesterday\nspec: {}\n", wantLine: 5, wantField: "metadata.creationTimestamp", wantMsg: "not an RFC 3339 time"},
		{name: "reports YAML syntax errors with their line", input: head + "spec:\n  hosts: [a.com\n", wantLine: 5, wantMsg: "did not find expected"},
		{name: "rejects a document that is not an object", input: "- a\n- b\n", wantLine: 1, wantMsg: "must be an object"},
		{name: "rejects a second spec naming both lines", input: head + "spec:\n  hosts: [a.com]\nspec:\n  hosts: [evil.com]\n", wantLine: 7, wantField: "spec", wantMsg: `duplicate key "spec": already set at line 5`},
		{name: "rejects a second namespace in metadata", input: "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: x\n  namespace: team\n  namespace: other\nspec: {hosts: [a.com]}\n", wantLine: 6, wantField: "metadata.namespace", wantMsg: `duplicate key "namespace": already set at line 5`},
		{name: "rejects a duplicate key deep in a spec list", input: head + "spec:\n  hosts: [a.com]\n  ports:\n  - number: 80\n    name: http\n    number: 81\n", wantLine: 10, wantField: "spec.ports[0].number", wantMsg: `duplicate key "number": already set at line 8`},
		{name: "rejects a duplicate key in a flow mapping", input: head + "spec: {hosts: [a.com], hosts: [b.com]}\n", wantLine: 5, wantField: "spec.hosts", wantMsg: `duplicate key "hosts"`},
		{name: "rejects an alias bomb before expanding it", input: aliasBomb, wantLine: 1, wantMsg: "too large once its YAML aliases are expanded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			order := 0
			docs, diags := Decode("in.yaml", strings.NewReader(tc.input), "default", &order)
			if len(docs) != 0 {
				t.Fatalf("got %d documents, want the bad one left out", len(docs))
			}
			if len(diags) == 0 {
				t.Fatal("no diagnostic")
			}
			d := diags[0]
			if d.File != "in.yaml" || d.Line != tc.wantLine || d.Field != tc.wantField || !strings.Contains(d.Message, tc.wantMsg) {
				t.Fatalf("got %s (line %d, field %q), want line %d field %q message containing %q", d, d.Line, d.Field, tc.wantLine, tc.wantField, tc.wantMsg)
			}
		})
	}
}

// aliasBomb is a few hundred bytes that expand to 10^8 values.
var aliasBomb = func() string {
	var b strings.Builder
	b.WriteString("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: x\n  annotations:\n")
	b.WriteString("    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "    a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("spec:\n  hosts: [a.com]\n  http:\n  - timeout: *a8\n")
	return b.String()
}()

func TestDecodeReadsYAMLBooleansInEverySpelling(t *testing.T) {
	t.Parallel()
	for _, spelling := range []string{"true", "True", "TRUE"} {
		order := 0
		docs, diags := Decode("b.yaml", strings.NewReader("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a.com\n  trafficPolicy:\n    tls: {mode: SIMPLE, insecureSkipVerify: "+spelling+"}\n"), "default", &order)
		if len(diags) > 0 {
			t.Fatalf("%s: %v", spelling, diags)
		}
		if !docs[0].DestinationRule().GetTrafficPolicy().GetTls().GetInsecureSkipVerify().GetValue() {
			t.Errorf("insecureSkipVerify: %s decoded as false", spelling)
		}
	}
}

func TestDecodeKeepsGoodDocumentsBesideBadOnes(t *testing.T) {
	t.Parallel()
	input := `apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: first}
spec: {hosts: [a.com], resolution: DNS}
---
apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata: {name: broken}
spec: {hostz: [b.com]}
---
# only a comment
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: third, namespace: team, creationTimestamp: "2024-05-01T10:00:00Z"}
spec: {host: a.com}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec: {hosts: [a.com], http: [{route: [{destination: {host: a.com}}]}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec: {selector: {istio: egressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: sc}
spec: {egress: [{hosts: ["./*"]}]}
`
	order := 0
	docs, diags, read := decodeCounting("in.yaml", strings.NewReader(input), "fallback", &order)
	if len(diags) != 1 || diags[0].Name != "broken" || diags[0].Line != 9 {
		t.Fatalf("diagnostics = %v, want one about broken at line 9", diags)
	}
	if read != 6 {
		t.Errorf("read = %d, want 6 (the comment-only document does not count)", read)
	}
	var names []string
	for _, d := range docs {
		names = append(names, d.Kind+"/"+d.Namespace+"/"+d.Name)
	}
	want := "ServiceEntry/fallback/first DestinationRule/team/third VirtualService/fallback/vs Gateway/fallback/gw Sidecar/fallback/sc"
	if strings.Join(names, " ") != want {
		t.Fatalf("documents = %v, want %s", names, want)
	}
	t.Run("decodes the spec into the istio.io/api type", func(t *testing.T) {
		if got := docs[0].ServiceEntry().GetHosts(); len(got) != 1 || got[0] != "a.com" {
			t.Fatalf("hosts = %v", got)
		}
		if docs[1].DestinationRule().GetHost() != "a.com" || docs[2].VirtualService() == nil || docs[3].Gateway() == nil || docs[4].Sidecar() == nil {
			t.Fatal("a kind did not decode into its type")
		}
	})
	t.Run("orders conflicts by creation time, then load order", func(t *testing.T) {
		if !docs[1].OlderThan(docs[0]) {
			t.Error("a document with a timestamp should be older than one without")
		}
		if !docs[0].OlderThan(docs[2]) || docs[2].OlderThan(docs[0]) {
			t.Error("without timestamps, load order decides")
		}
	})
}

func TestLoadReadsFilesFoldersAndStdin(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec: {hosts: [a.com]}\n")
	write("nested/b.yml", "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: b}\nspec: {hosts: [b.com]}\n")
	write("nested/deeper/c.json", `{"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry", "metadata": {"name": "c"}, "spec": {"hosts": ["c.com"], "resolution": "DNS"}}`)
	write("notes.txt", "not config")

	res, err := Load([]string{dir, "-"}, Options{Namespace: "ns1", Stdin: strings.NewReader("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: d}\nspec: {hosts: [d.com]}\n")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range res.Documents {
		got = append(got, d.Name+"@"+filepath.Base(d.File))
	}
	if want := "a@a.yaml b@b.yml c@c.json d@<stdin>"; strings.Join(got, " ") != want {
		t.Fatalf("loaded %v, want %s", got, want)
	}
	if res.Files != 4 || res.Read != 4 {
		t.Fatalf("files = %d, read = %d, want 4 and 4", res.Files, res.Read)
	}
	t.Run("fails on a path that does not exist", func(t *testing.T) {
		if _, err := Load([]string{filepath.Join(dir, "missing.yaml")}, Options{}); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestLineOfFallsBackToTheNearestField(t *testing.T) {
	t.Parallel()
	order := 0
	docs, _ := Decode("x.yaml", strings.NewReader("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts:\n  - a.com\n  endpoints:\n  - address: 1.2.3.4\n    ports:\n      http: 8080\n"), "d", &order)
	d := docs[0]
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "finds a map key", path: "spec.endpoints[0].ports.http", want: 10},
		{name: "finds a list item", path: "spec.hosts[0]", want: 6},
		{name: "falls back to the parent of a missing field", path: "spec.endpoints[0].weight", want: 8},
		{name: "falls back to the document for an absent section", path: "spec.ports[0].name", want: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := d.LineOf(tc.path); got != tc.want {
				t.Fatalf("LineOf(%q) = %d, want %d", tc.path, got, tc.want)
			}
		})
	}
}
