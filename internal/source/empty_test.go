package source

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedLog is a log sink the test reads while Run writes.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// An empty config is valid, as Istio takes an empty ConfigMap, so it is served; but a change
// that takes away every service is more often a truncated file or a mount gone wrong than
// what the operator meant, so it is logged as a warning, not as a routine reload.
func TestWatcherWarnsWhenAReloadLeavesNoService(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// change edits the config; path is what -f names, dir the folder it is in.
		change   func(t *testing.T, path string)
		wantWarn bool
	}{
		{
			name:     "warns when the file is truncated to zero bytes",
			change:   func(t *testing.T, path string) { write(t, path, "") },
			wantWarn: true,
		},
		{
			name: "warns when the file is replaced by an empty folder",
			change: func(t *testing.T, path string) {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantWarn: true,
		},
		{
			name:   "stays at info when services remain",
			change: func(t *testing.T, path string) { write(t, path, entry("b", "b.example.com")) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.yaml")
			write(t, path, entry("a", "a.example.com"))
			logs := &lockedLog{}
			h := start(t, Config{Paths: []string{path}, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			tc.change(t, path)
			waitFor(t, "the change is applied", func() bool { return h.appliedCount() == 1 })
			waitFor(t, "the reload is logged", func() bool { return strings.Contains(logs.String(), `msg="config reloaded"`) })
			got := logs.String()
			warned := strings.Contains(got, "level=WARN") && strings.Contains(got, "no service")
			if warned != tc.wantWarn {
				t.Errorf("warned %v, want %v; log:\n%s", warned, tc.wantWarn, got)
			}
			if tc.wantWarn && !strings.Contains(got, "previous_services=1") {
				t.Errorf("the warning does not say how many services were served before:\n%s", got)
			}
		})
	}
}
