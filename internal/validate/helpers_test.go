package validate

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// finding is what a test expects of one diagnostic: its code, field path and whether it only warns.
type finding struct {
	code    string
	field   string
	warning bool
	info    bool
}

func (f finding) String() string {
	level := "error"
	switch {
	case f.warning:
		level = "warning"
	case f.info:
		level = "info"
	}
	return fmt.Sprintf("%s %s %s", level, f.code, f.field)
}

// ruleCase is one row of a rule table: a spec in YAML and exactly the findings it must produce.
type ruleCase struct {
	name string
	kind string // ServiceEntry when empty
	doc  string // metadata.name, "test" when empty
	meta string // extra metadata lines, e.g. "labels: {a: b}"
	spec string
	want []finding
}

// decodeDoc builds a document from YAML the way files are loaded, so field lines are real.
func decodeDoc(t *testing.T, kind, name, meta, spec string) *config.Document {
	t.Helper()
	if kind == "" {
		kind = config.KindServiceEntry
	}
	if name == "" {
		name = "test"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: networking.istio.io/v1\nkind: %s\nmetadata:\n  name: %s\n  namespace: ns\n", kind, name)
	for _, l := range strings.Split(strings.TrimSpace(meta), "\n") {
		if l != "" {
			b.WriteString("  " + l + "\n")
		}
	}
	b.WriteString("spec:\n")
	for _, l := range strings.Split(strings.Trim(spec, "\n"), "\n") {
		b.WriteString("  " + l + "\n")
	}
	order := 0
	docs, diags := config.Decode("test.yaml", strings.NewReader(b.String()), "default", &order)
	if len(diags) > 0 || len(docs) != 1 {
		t.Fatalf("test document does not load: %v\n%s", diags, b.String())
	}
	return docs[0]
}

func findingsOf(ds []diag.Diagnostic) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, finding{code: d.Code, field: d.Field, warning: d.Level == diag.Warning, info: d.Level == diag.Info}.String())
	}
	sort.Strings(out)
	return out
}

func wantOf(fs []finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		out = append(out, f.String())
	}
	sort.Strings(out)
	return out
}

// runRules checks that each case produces exactly its findings, no more and no fewer.
func runRules(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ds := Document(decodeDoc(t, tc.kind, tc.doc, tc.meta, tc.spec))
			got, want := findingsOf(ds), wantOf(tc.want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("findings differ\ngot:\n  %s\nwant:\n  %s\nmessages:\n%s",
					strings.Join(got, "\n  "), strings.Join(want, "\n  "), messages(ds))
			}
			for _, d := range ds {
				if d.Line == 0 || d.File != "test.yaml" || d.Kind == "" || d.Name == "" || d.Message == "" {
					t.Errorf("finding is not located: %+v", d)
				}
			}
		})
	}
}

func messages(ds []diag.Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString("  " + d.String() + "\n")
	}
	return b.String()
}

func e(code, field string) finding { return finding{code: code, field: field} }
func w(code, field string) finding { return finding{code: code, field: field, warning: true} }
func i(code, field string) finding { return finding{code: code, field: field, info: true} }
