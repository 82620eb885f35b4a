package validate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
	"github.com/meshentry/meshentry/internal/diag"
)

// randomEntryYAML draws a ServiceEntry from small pools, so that entries share hosts and ports
// across namespaces and every carried check has something to find.
func randomEntryYAML(r *rand.Rand, name string) string {
	var b strings.Builder
	ns := []string{"a", "b", "c"}[r.IntN(3)]
	fmt.Fprintf(&b, "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: %s\n  namespace: %s\n", name, ns)
	if r.IntN(3) == 0 {
		fmt.Fprintf(&b, "  creationTimestamp: \"2024-01-0%dT00:00:00Z\"\n", 1+r.IntN(3))
	}
	b.WriteString("spec:\n  hosts:\n")
	hosts := []string{"h0.example.com", "h1.example.com", "H1.example.com.", "h2.example.com", "*.w.example.com", "x.w.example.com"}
	for range 1 + r.IntN(2) {
		fmt.Fprintf(&b, "  - %q\n", hosts[r.IntN(len(hosts))])
	}
	if r.IntN(3) == 0 {
		b.WriteString("  addresses: [10.0.0.1]\n")
	}
	b.WriteString("  ports:\n")
	ports := []string{"{number: 80, name: http, protocol: HTTP}", "{number: 80, name: tcp, protocol: TCP}", "{number: 5432, name: pg, protocol: TCP}", "{number: 443, name: tls, protocol: TLS}"}
	for i, p := range ports {
		if r.IntN(2) == 0 || i == 3 {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	fmt.Fprintf(&b, "  resolution: %s\n", []string{"NONE", "DNS", "STATIC"}[r.IntN(3)])
	if r.IntN(3) == 0 {
		fmt.Fprintf(&b, "  exportTo: [%q]\n", []string{".", "*", "b", "~"}[r.IntN(4)])
	}
	return b.String()
}

// randomOtherYAML is a DestinationRule or VirtualService naming a pool host.
func randomOtherYAML(r *rand.Rand, name string) string {
	host := []string{"h0.example.com", "h2.example.com", "nowhere.example.com", "y.w.example.com"}[r.IntN(4)]
	if r.IntN(2) == 0 {
		return fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: a}\nspec:\n  host: %s\n", name, host)
	}
	return fmt.Sprintf("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %s, namespace: b}\nspec:\n  hosts: [%s]\n  http:\n  - route:\n    - destination: {host: %s}\n", name, host, host)
}

func TestAnAnalyzerCarriedOverRandomEditsFindsWhatAFreshAnalysisFinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   []AnalyzeOption
		others bool
	}{
		{name: "ServiceEntries alone"},
		{name: "ServiceEntries with rules of other kinds", others: true},
		{name: "ServiceEntries for a DNS proxy", opts: []AnalyzeOption{WithDNSProxy()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
			dir := t.TempDir()
			serial := 0
			writeFile := func(f int) {
				var b strings.Builder
				for range r.IntN(4) {
					serial++
					if tc.others && r.IntN(4) == 0 {
						b.WriteString(randomOtherYAML(r, fmt.Sprintf("o%d", serial)))
					} else {
						b.WriteString(randomEntryYAML(r, fmt.Sprintf("se%d", serial)))
					}
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", f)), []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for f := range 8 {
				writeFile(f)
			}
			cache := config.NewCache(0)
			z := NewAnalyzer(tc.opts...)
			found := 0
			for step := range 60 {
				res, err := config.Load([]string{dir}, config.Options{Cache: cache})
				if err != nil {
					t.Fatal(err)
				}
				got, want := z.Analyze(res.Documents), Analyze(res.Documents, tc.opts...)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d: carried analysis\n%s\nfresh\n%s", step, lines(got), lines(want))
				}
				found += len(want)
				// One file rewritten, removed or added, as a reload sees.
				f := r.IntN(10)
				if r.IntN(6) == 0 {
					os.Remove(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", f)))
				} else {
					writeFile(f)
				}
			}
			if found == 0 {
				t.Fatal("the random configs gave no finding at all: the test compares nothing")
			}
		})
	}
}

func lines(ds []diag.Diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "  %s [%s]\n", d.String(), d.Code)
	}
	return b.String()
}
