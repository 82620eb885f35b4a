package casefile

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		text string
		want []Field
	}{
		{
			name: "fields are read in order with their space trimmed",
			text: "# case: one\n#  istio :  http a.test 80 \n# differs:\n",
			want: []Field{{Key: "case", Value: "one"}, {Key: "istio ", Value: "http a.test 80"}, {Key: "differs"}},
		},
		{
			name: "the header ends at the first line that is not a comment",
			text: "# case: one\napiVersion: v1\n# want: late\n",
			want: []Field{{Key: "case", Value: "one"}},
		},
		{
			name: "a line without a colon is a key with no value",
			text: "# note\n",
			want: []Field{{Key: "note"}},
		},
		{
			name: "a file that starts with YAML has no header",
			text: "kind: ServiceEntry\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "case.yaml")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := Header(t, path); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Header = %#v, want %#v", got, tc.want)
			}
		})
	}
}
