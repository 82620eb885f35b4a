package source

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/compile"
)

// BenchmarkReload10k measures one reload of a 10,000-entry file once its event has arrived:
// listing, fingerprinting, compiling and applying (to nothing), without the debounce wait.
func BenchmarkReload10k(b *testing.B) {
	path := filepath.Join(b.TempDir(), "config.yaml")
	render := func(gen int) string {
		var sb strings.Builder
		for i := range 10_000 {
			sb.WriteString(entry(fmt.Sprintf("se-%d", i), fmt.Sprintf("svc%d-%d.example.com", i, gen)) + "---\n")
		}
		return sb.String()
	}
	configs := []string{render(0), render(1)}
	if err := os.WriteFile(path, []byte(configs[0]), 0o644); err != nil {
		b.Fatal(err)
	}
	w, _, err := New(Config{Paths: []string{path}})
	if err != nil {
		b.Fatal(err)
	}
	apply := func(*compile.Result) {}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		if err := os.WriteFile(path, []byte(configs[(i+1)%2]), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		w.check(nil, apply, byEvent)
	}
	if st := w.Status(); st.Accepted == 0 || st.Refused != 0 {
		b.Fatalf("status %+v", st)
	}
}
