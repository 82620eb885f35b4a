package compile

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/meshentry/meshentry/internal/config"
)

// summary is what a compile decided: every finding and every service, in order.
func summary(res *Result) []string {
	var out []string
	for _, d := range res.Diagnostics {
		out = append(out, d.String())
	}
	for _, s := range res.Snapshot.Services {
		out = append(out, fmt.Sprintf("%s/%s %s %v", s.Namespace, s.Entry, s.Host, s.Ports))
	}
	return append(out, fmt.Sprintf("documents %d files %d", res.Documents, res.Files))
}

func TestCachedCompilesDecideWhatUncachedOnesDo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	entry := func(name, host, extra string) string {
		return fmt.Sprintf("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s}\nspec:\n  hosts: [%s]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n%s---\n", name, host, extra)
	}
	steps := []struct {
		name  string
		files map[string]string
	}{
		{name: "starts from three files", files: map[string]string{
			"a.yaml": entry("a", "a.com", ""), "b.yaml": entry("b", "b.com", ""), "c.yaml": entry("c", "c.com", "")}},
		{name: "takes an edit to one file", files: map[string]string{"b.yaml": entry("b", "b2.com", "")}},
		{name: "reports an invalid document added to an unchanged file's neighbour", files: map[string]string{
			"c.yaml": entry("c", "c.com", "") + entry("bad", "bad.com", "  endpoints: [{address: 1.2.3.4, ports: {https: 1}}]\n")}},
		{name: "sees a conflict an edit makes with an unchanged file", files: map[string]string{"b.yaml": entry("b", "a.com", "")}},
		{name: "forgets a removed file", files: map[string]string{"a.yaml": ""}},
	}
	c := NewCache()
	for i, st := range steps {
		for name, body := range st.files {
			p := filepath.Join(dir, name)
			if body == "" {
				os.Remove(p)
				continue
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cached, err := c.Paths([]string{dir}, config.Options{}, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := Paths([]string{dir}, config.Options{}, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := summary(cached), summary(fresh); !slices.Equal(got, want) {
			t.Fatalf("%s: cached compile\n%q\nuncached\n%q", st.name, got, want)
		}
		if i == 1 {
			if s := c.Files.Stats(); s.Hits != 2 || s.Misses != 4 {
				t.Fatalf("%s: file cache %+v, want the 2 unchanged files reused", st.name, s)
			}
		}
	}
}

func TestCachedCompilesOfAFileGivenTwiceDecideWhatUncachedOnesDo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	body := func(host, extra string) []byte {
		return fmt.Appendf(nil, "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: e}\nspec:\n  hosts: [%s]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: DNS\n%s", host, extra)
	}
	c := NewCache()
	// a holds two entries, the second of which changes: its first is then found in the cache,
	// in each of the two places a is read.
	two := func(second []byte) []byte { return append(append(body("a.com", ""), "---\n"...), second...) }
	for i, step := range []struct{ a, b []byte }{
		{a: two(body("a2.com", "")), b: body("b.com", "")},
		{a: two(body("a3.com", "")), b: body("b.com", "")},
		{a: two(body("a3.com", "  endpoints: [{address: 1.2.3.4, ports: {https: 1}}]\n")), b: body("b2.com", "")},
		{a: two(body("a4.com", "")), b: body("b2.com", "")},
	} {
		if err := os.WriteFile(a, step.a, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(b, step.b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths := []string{a, b, a}
		cached, err := c.Paths(paths, config.Options{}, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := Paths(paths, config.Options{}, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := summary(cached), summary(fresh); !slices.Equal(got, want) {
			t.Fatalf("step %d: cached compile\n%q\nuncached\n%q", i, got, want)
		}
	}
}
