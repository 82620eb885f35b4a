package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A -f path that is a link to a folder is read as the folder: Kubernetes mounts and operators'
// "current" links are such paths, and reading nothing from them served an empty config.
func TestLoadFollowsALinkToAFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	real := filepath.Join(dir, "v1")
	if err := os.MkdirAll(filepath.Join(real, "nested"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, host := range map[string]string{"a.yaml": "a.com", "nested/b.yaml": "b.com"} {
		body := "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: x}\nspec: {hosts: [" + host + "]}\n"
		if err := os.WriteFile(filepath.Join(real, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "current")
	if err := os.Symlink("v1", link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{name: "reads the folder a link names", path: link},
		{name: "reads it with a trailing slash too", path: link + string(filepath.Separator)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Load([]string{tc.path}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Files != 2 || len(res.Documents) != 2 {
				t.Fatalf("read %d files, %d documents; want 2 and 2", res.Files, len(res.Documents))
			}
			for _, d := range res.Documents {
				if !strings.HasPrefix(d.File, link+string(filepath.Separator)) {
					t.Errorf("document file %s is not named under the link %s", d.File, link)
				}
			}
		})
	}
}
