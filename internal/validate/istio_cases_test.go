package validate

import (
	"path/filepath"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
	"github.com/meshentry/meshentry/internal/testutil/casefile"
)

// istioCasesDir holds Istio's TestValidateServiceEntries cases and its ServiceEntry CRD fixtures, one
// document per file, each headed by comments: "# case:", "# istio:" (Istio's verdict), "# want:"
// (ours) and, where the two differ on purpose, "# differs:" saying why.
const istioCasesDir = "../../testdata/validate/istio-cases"

type istioCase struct {
	file, name, istio, want, differs string
}

func readIstioCase(t *testing.T, path string) istioCase {
	t.Helper()
	c := istioCase{file: path}
	for _, h := range casefile.Header(t, path) {
		switch h.Key {
		case "case":
			c.name = h.Value
		case "istio":
			c.istio = h.Value
		case "want":
			c.want = h.Value
		case "differs":
			c.differs = h.Value
		}
	}
	if c.name == "" || c.istio == "" || c.want == "" {
		t.Fatalf("%s: header needs # case:, # istio: and # want: lines", path)
	}
	if (c.want != c.istio) != (c.differs != "") {
		t.Fatalf("%s: a verdict that differs from Istio's needs a # differs: line, and only such a verdict may have one", path)
	}
	return c
}

// verdict loads a file as meshentry does and sums up what loading and validation say about it.
func verdict(t *testing.T, path string) (string, []diag.Diagnostic) {
	t.Helper()
	res, err := config.Load([]string{path}, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, ds := Documents(res.Documents)
	ds = append(res.Diagnostics, ds...)
	errs, warns, _ := diag.Split(ds)
	switch {
	case len(errs) > 0:
		return "error", ds
	case len(warns) > 0:
		return "warning", ds
	}
	return "valid", ds
}

func TestIstioServiceEntryCases(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(istioCasesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in %s: %v", istioCasesDir, err)
	}
	agree, differ := 0, 0
	for _, path := range files {
		c := readIstioCase(t, path)
		if c.differs == "" {
			agree++
		} else {
			differ++
		}
		t.Run("gives Istio's verdict on "+c.name, func(t *testing.T) {
			t.Parallel()
			got, ds := verdict(t, path)
			if got != c.want {
				t.Errorf("%s: verdict %s, want %s (Istio: %s)\n%s", filepath.Base(path), got, c.want, c.istio, messages(ds))
			}
		})
	}
	t.Logf("%d cases: %d agree with Istio, %d differ on purpose", len(files), agree, differ)
}
