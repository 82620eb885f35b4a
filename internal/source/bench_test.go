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

// BenchmarkReloadOneOf1000Files measures a reload of 10,000 entries in 1,000 files after one file
// changed, once its event has arrived: the case the decode cache is for.
func BenchmarkReloadOneOf1000Files(b *testing.B) {
	dir := b.TempDir()
	const files, per = 1000, 10
	write := func(f, gen int) {
		var sb strings.Builder
		for i := range per {
			n := f*per + i
			sb.WriteString(entry(fmt.Sprintf("se-%d", n), fmt.Sprintf("svc%d-%d.example.com", n, gen)) + "---\n")
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.yaml", f)), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for f := range files {
		write(f, 0)
	}
	w, _, err := New(Config{Paths: []string{dir}})
	if err != nil {
		b.Fatal(err)
	}
	apply := func(*compile.Result) {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		write(files/2, i+1)
		b.StartTimer()
		w.check(nil, apply, byEvent)
	}
	if st := w.Status(); st.Accepted == 0 || st.Refused != 0 {
		b.Fatalf("status %+v", st)
	}
}
