package validate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

var update = flag.Bool("update", false, "rewrite testdata/validate/examples.golden from the current output")

const (
	// examplesDir holds copies of the reference page's examples, so the tests do not depend on the
	// shared spec folder; TestExampleCopiesMatchTheSpec keeps the copies honest.
	examplesDir     = "../../testdata/validate/examples"
	specExamplesDir = "../../../shared/spec/examples"
	examplesGolden  = "../../testdata/validate/examples.golden"
	invalidExample  = "07-external-svc-dns.yaml"
)

func exampleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", examplesDir, err)
	}
	return files
}

func TestExamples(t *testing.T) {
	for _, path := range exampleFiles(t) {
		base := filepath.Base(path)
		verb := "accepts"
		if base == invalidExample {
			verb = "rejects"
		}
		t.Run(verb+" example "+base, func(t *testing.T) {
			t.Parallel()
			got, ds := verdict(t, path)
			want := "valid"
			if base == invalidExample {
				want = "error"
			}
			if got != want {
				t.Errorf("verdict %s, want %s\n%s", got, want, messages(ds))
			}
		})
	}
}

func TestExample07NamesTheUndeclaredEndpointPort(t *testing.T) {
	_, ds := verdict(t, filepath.Join(examplesDir, invalidExample))
	if len(ds) == 0 {
		t.Fatal("no findings")
	}
	diag.Sort(ds)
	first := ds[0]
	want := diag.Diagnostic{
		Level: diag.Error, Code: CodeEndpointPortUndeclared, File: filepath.Join(examplesDir, invalidExample), Line: 20,
		Kind: "ServiceEntry", Namespace: "default", Name: "external-svc-dns",
		Field: "spec.endpoints[0].ports.https", Message: `port name "https" is not declared in spec.ports (declared: http)`,
	}
	if first != want {
		t.Errorf("first finding\n got %+v\nwant %+v", first, want)
	}
	// Every endpoint repeats the mistake, and validation reports each one rather than stopping.
	if len(ds) != 3 || ds[1].Line != 23 || ds[2].Line != 26 {
		t.Errorf("want one finding per endpoint (lines 20, 23, 26), got\n%s", messages(ds))
	}
}

func TestExampleCopiesMatchTheSpec(t *testing.T) {
	originals, err := filepath.Glob(filepath.Join(specExamplesDir, "*.yaml"))
	if err != nil || len(originals) == 0 {
		t.Skipf("the shared spec folder %s is not here", specExamplesDir)
	}
	if copies := exampleFiles(t); len(copies) != len(originals) {
		t.Errorf("%d copies in %s, %d examples in %s", len(copies), examplesDir, len(originals), specExamplesDir)
	}
	for _, o := range originals {
		want, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(examplesDir, filepath.Base(o)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from the spec's copy; run: cp %s/*.yaml %s/", filepath.Base(o), specExamplesDir, examplesDir)
		}
	}
}

// renderExamples is the full text output over the examples folder: loading, validation of every
// document, and analysis of the accepted ones, sorted, with a closing count.
func renderExamples(t *testing.T) string {
	t.Helper()
	res, err := config.Load([]string{examplesDir}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rel := func(f string) string { return "examples/" + filepath.Base(f) }
	for _, d := range res.Documents {
		d.File = rel(d.File)
	}
	ds := append([]diag.Diagnostic(nil), res.Diagnostics...)
	for i := range ds {
		ds[i].File = rel(ds[i].File)
	}
	ok, found := Documents(res.Documents)
	ds = append(ds, found...)
	ds = append(ds, Analyze(ok)...)
	diag.Sort(ds)
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String() + "\n")
	}
	errs, warns, _ := diag.Split(ds)
	fmt.Fprintf(&b, "%d files, %d documents, %d accepted; %d errors, %d warnings\n",
		res.Files, len(res.Documents), len(ok), len(errs), len(warns))
	return b.String()
}

func TestExamplesGolden(t *testing.T) {
	got := renderExamples(t)
	if *update {
		if err := os.WriteFile(examplesGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(examplesGolden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestExamplesGolden -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output over the examples changed (run with -update if that is intended)\n got:\n%s\nwant:\n%s", got, want)
	}
}
