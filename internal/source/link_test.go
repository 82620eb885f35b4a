package source

import (
	"path/filepath"
	"strings"
	"testing"
)

// A folder given through a link that is later pointed elsewhere (`ln -sfn v2 current`, as
// deploy scripts swap releases) must be followed by file events alone: the swap itself, and then
// edits in the new target rather than in the old one.
func TestWatcherFollowsALinkToAFolderWhenItIsRepointed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	linkedFolder(t, dir, "v1", "one.example.com")
	// No periodic check: only file events can find the changes.
	h := start(t, Config{Paths: []string{filepath.Join(dir, "current")}})
	if st := h.w.Status(); st.Services != 1 {
		t.Fatalf("startup read %d services through the link, want 1", st.Services)
	}
	// The look Run takes once at start must be over, or it, not an event, finds the change.
	waitChecks(t, h.w, 1)
	steps := []struct {
		name   string
		change func()
		host   string
	}{
		{name: "reloads when the link is pointed at another folder", change: func() { linkedFolder(t, dir, "v2", "two.example.com") }, host: "two.example.com"},
		{name: "then reloads an edit in the new folder", change: func() { write(t, filepath.Join(dir, "v2", "a.yaml"), entry("a", "three.example.com")) }, host: "three.example.com"},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			step.change()
			waitFor(t, step.host+" is applied", func() bool { return strings.Contains(strings.Join(h.hosts(), ","), step.host) })
		})
	}
}
