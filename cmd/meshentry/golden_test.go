package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected output of golden files")

// TestGolden runs each testdata/cli/*.txt case through the CLI in-process. A case is a header of
// "args:", "exit:" and optional "stdin:" lines, a "----" line, then the expected standard output.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			head, want, ok := strings.Cut(string(raw), "----\n")
			if !ok {
				t.Fatalf("%s: no ---- line", file)
			}
			var args []string
			wantExit := 0
			stdin := ""
			for _, line := range strings.Split(head, "\n") {
				switch {
				case strings.HasPrefix(line, "args:"):
					args = strings.Fields(strings.TrimPrefix(line, "args:"))
				case strings.HasPrefix(line, "exit:"):
					wantExit, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "exit:")))
				case strings.HasPrefix(line, "stdin:"):
					p := strings.TrimSpace(strings.TrimPrefix(line, "stdin:"))
					b, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					stdin = string(b)
				}
			}
			var stdout, stderr bytes.Buffer
			code := run(args, strings.NewReader(stdin), &stdout, &stderr)
			if *update {
				newHead := head
				if code != wantExit {
					newHead = strings.Replace(head, "exit: "+strconv.Itoa(wantExit), "exit: "+strconv.Itoa(code), 1)
				}
				if err := os.WriteFile(file, []byte(newHead+"----\n"+stdout.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if code != wantExit {
				t.Errorf("exit status = %d, want %d; stderr:\n%s", code, wantExit, stderr.String())
			}
			if r := repeatedPart(stdout.String()); r != "" {
				t.Errorf("output says %q twice in a row", r)
			}
			if got := stdout.String(); got != want {
				t.Errorf("stdout differs (rerun with -update to accept)\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

// repeatedPart returns a part of a reason said twice in a row, as in "resolve x: resolve x: no such
// host", which happens when an error is wrapped with the context it already carries.
func repeatedPart(out string) string {
	for _, line := range strings.Split(out, "\n") {
		for _, sep := range []string{": ", "; ", " — "} {
			parts := strings.Split(line, sep)
			for i := 1; i < len(parts); i++ {
				if p := strings.TrimSpace(parts[i]); p != "" && p == strings.TrimSpace(parts[i-1]) {
					return p
				}
			}
		}
	}
	return ""
}
