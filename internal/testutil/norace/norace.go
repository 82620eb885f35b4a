// Package norace runs a test again in a test binary built without the race detector, for a
// test whose property the detector hides (allocation counts: it allocates on its own), so
// that a suite run under -race still checks it.
package norace

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Rerun runs the test t (by its full name) in the current package's directory with
// `go test -count=1 -run ^NAME$`, without -race, and fails t with the output when that run
// fails. It skips t when no go command is found.
func Rerun(t *testing.T) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to rerun %s without the race detector: %v", t.Name(), err)
	}
	pattern := "^" + regexp.QuoteMeta(t.Name()) + "$"
	cmd := exec.CommandContext(t.Context(), goBin, "test", "-count=1", "-run", pattern, ".")
	cmd.Env = withoutRaceFlag(os.Environ())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s without -race: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "ok") {
		t.Fatalf("%s without -race: no ok in\n%s", t.Name(), out)
	}
	t.Logf("%s passed without -race (%v, built and run)", t.Name(), time.Since(start).Round(time.Millisecond))
}

// withoutRaceFlag is env with -race taken out of GOFLAGS, where a caller may have put it.
func withoutRaceFlag(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			var keep []string
			for f := range strings.FieldsSeq(v) {
				if f != "-race" && f != "-race=true" {
					keep = append(keep, f)
				}
			}
			kv = "GOFLAGS=" + strings.Join(keep, " ")
		}
		out = append(out, kv)
	}
	return out
}
