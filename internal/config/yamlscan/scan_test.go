package yamlscan

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// reference decodes src as the loader's yaml.v3 path does, one document at a time.
func reference(src string) ([]*yaml.Node, error) {
	var docs []*yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(src))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		docs = append(docs, &n)
	}
}

// sameNode reports the first difference between two trees, comments aside (the loader reads none).
func sameNode(path string, a, b *yaml.Node) error {
	if a.Kind != b.Kind || a.Tag != b.Tag || a.Value != b.Value || a.Style != b.Style || a.Anchor != b.Anchor ||
		a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content) || (a.Alias == nil) != (b.Alias == nil) {
		return fmt.Errorf("%s: scanned {kind %d tag %q value %q style %d at %d:%d, %d children}, yaml.v3 {kind %d tag %q value %q style %d at %d:%d, %d children}",
			path, a.Kind, a.Tag, a.Value, a.Style, a.Line, a.Column, len(a.Content), b.Kind, b.Tag, b.Value, b.Style, b.Line, b.Column, len(b.Content))
	}
	for i := range a.Content {
		if err := sameNode(fmt.Sprintf("%s/%d", path, i), a.Content[i], b.Content[i]); err != nil {
			return err
		}
	}
	return nil
}

// differ checks the property the loader relies on: whatever Parse accepts, yaml.v3 reads
// without error into the same nodes, in batches of at most batch.
func differ(src string) (accepted bool, err error) {
	want, rerr := reference(src)
	for _, batch := range []int{1 << 20, 2} {
		var p Parser
		got := 0
		ok := p.Parse(src, batch, func(docs []*yaml.Node) {
			if len(docs) > batch || len(docs) == 0 {
				err = errors.Join(err, fmt.Errorf("a batch of %d documents, at most %d wanted", len(docs), batch))
			}
			for _, d := range docs {
				if got < len(want) && err == nil {
					err = sameNode(fmt.Sprintf("doc%d", got), d, want[got])
				}
				got++
			}
		})
		if !ok {
			if got > 0 {
				return false, fmt.Errorf("refused after emitting %d documents", got)
			}
			return false, err
		}
		if rerr != nil {
			return true, fmt.Errorf("accepted, but yaml.v3 says: %v", rerr)
		}
		if err == nil && got != len(want) {
			err = fmt.Errorf("%d documents, yaml.v3 %d", got, len(want))
		}
		if err != nil {
			return true, fmt.Errorf("batches of %d: %w", batch, err)
		}
	}
	return true, nil
}

func TestParseMatchesYAMLv3(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src string
		accept    bool
	}{
		{name: "a service entry in block style", accept: true, src: "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: se-0\n  labels:\n    app: svc0\nspec:\n  hosts:\n  - svc0.a.example.com\n  - \"*.wild.example.com\"\n  ports:\n  - number: 443\n    name: https\n    protocol: TLS\n  resolution: DNS\n  endpoints:\n  - address: 10.0.0.1\n    weight: 3\n"},
		{name: "two documents and an empty one", accept: true, src: "a: 1\n---\n---\nb: [x, 'y', \"z\"]\n--- # end\n"},
		{name: "nulls, booleans, floats and flow maps", accept: true, src: "a:\nb: ~\nc: true\nd: 1.5\ne: .5\nf: {x: 1, y: two}\ng: []\nh: {}\n"},
		{name: "nested sequences and compact mappings", accept: true, src: "- - a\n  - b\n-\n- c: 1\n  d:\n  - e\n"},
		{name: "comments everywhere", accept: true, src: "# head\na: 1 # line\n  # indented comment\nb:   # after key\n  c: d#not-a-comment\n"},
		{name: "quoted keys and escapes", accept: true, src: "\"a b\": 'it''s'\n'c': \"x\\ty\\u00e9\\\"\"\n"},
		{name: "non-ASCII text counts columns in runes", accept: true, src: "é: ü\nkey: 'ñ' # ß\n"},
		{name: "numbers, dates and strings that look like them", accept: true, src: "a: 0x1F\nb: 010\nc: 1e3\nd: 10.0.0.1\ne: 2024-01-02\nf: -1\ng: +5\nh: 1.2.3\ni: 2001-12-14t21:59:43.10-05:00\n"},
		{name: "a root scalar", accept: true, src: "--- \nhello\n"},
		{name: "an anchor", src: "a: &x 1\nb: *x\n"},
		{name: "a tag", src: "a: !!str 1\n"},
		{name: "a block scalar", src: "a: |\n  text\n"},
		{name: "a multi-line plain scalar", src: "a: one\n  two\n"},
		{name: "a tab", src: "a:\t1\n"},
		{name: "a carriage return", src: "a: 1\r\n"},
		{name: "a byte order mark", src: "\ufeffa: 1\n"},
		{name: "a merge key", src: "a: {x: 1}\nb:\n  <<: {y: 2}\n"},
		{name: "a directive", src: "%YAML 1.2\n---\na: 1\n"},
		{name: "a document end marker", src: "a: 1\n...\n"},
		{name: "a nested flow collection", src: "a: [[1]]\n"},
		{name: "a flow collection over two lines", src: "a: [1,\n  2]\n"},
		{name: "a mapping value on a key line", src: "a: b: c\n"},
		{name: "odd indentation", src: "a:\n    b: 1\n  c: 2\n"},
		{name: "an underscore number", src: "a: 1_000\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			accepted, err := differ(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if accepted != tc.accept {
				t.Fatalf("accepted = %v, want %v", accepted, tc.accept)
			}
		})
	}
}

// seeds are the YAML files of the repository and the shared spec, as real configs.
func seeds(tb testing.TB) []string {
	var out []string
	for _, root := range []string{"../../../testdata", "../../../examples", "../../../../../shared/spec"} {
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				return nil
			}
			if b, err := os.ReadFile(path); err == nil {
				out = append(out, string(b))
			}
			return nil
		})
	}
	return out
}

func TestParseMatchesYAMLv3OnEveryRepositoryFile(t *testing.T) {
	t.Parallel()
	files := seeds(t)
	accepted := 0
	for _, src := range files {
		ok, err := differ(src)
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		if ok {
			accepted++
		}
	}
	t.Logf("%d of %d files in the subset", accepted, len(files))
	if accepted == 0 {
		t.Fatal("no file in the subset")
	}
}

// FuzzParse holds the scanner to yaml.v3: any input it accepts must read the same there.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Add("a: 1\n---\n---\nb: [x, 'y', \"z\"]\n--- # end\n")
	f.Add("- - a\n  - b\n-\n- c: 1\n  d:\n  - e\n")
	f.Add("\"a b\": 'it''s'\n'c': \"x\\ty\\u00e9\\\"\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		if _, err := differ(src); err != nil {
			t.Fatalf("%v\ninput %q", err, src)
		}
	})
}
