// Package casefile reads the header of a test case file: the leading comment lines of the form
// "# key: value" that say what the YAML below them is for and what answer it expects.
package casefile

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// Field is one "# key: value" header line, key and value with surrounding space removed.
type Field struct {
	// Key is the text before the first colon.
	Key string
	// Value is the text after it.
	Value string
}

// Header returns the header lines of the file at path, in order, up to the first line that is
// not a comment; it fails the test when the file cannot be read.
func Header(t testing.TB, path string) []Field {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Field
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "#") {
			break
		}
		key, value, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "#")), ":")
		out = append(out, Field{Key: key, Value: strings.TrimSpace(value)})
	}
	if err := s.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}
