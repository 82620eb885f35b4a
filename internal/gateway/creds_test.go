package gateway

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshentry/meshentry/internal/testutil/pki"
)

// TestCredentialsFollowAFolderNamedAfterRunStarted reloads a folder first named by a reload
// of the config, within the debounce rather than the 30 s periodic re-read.
func TestCredentialsFollowAFolderNamedAfterRunStarted(t *testing.T) {
	t.Parallel()
	root := pki.NewCA(t, "cluster.local")
	dir := t.TempDir()
	credential(t, root, dir, "early", "a.example.com")
	credential(t, root, dir, "late", "b.example.com")
	store := NewCredentials(dir, nil)
	_, err := store.Get("early")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); store.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "Run watching", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.watcher != nil
	})
	late, err := store.Get("late")
	must(t, err)
	before := late.Load().Cert.Leaf.SerialNumber.String()
	credential(t, root, dir, "late", "b.example.com")
	waitFor(t, "the late folder reloaded", func() bool { return late.Load().Cert.Leaf.SerialNumber.String() != before })
}

func TestCredentialsRefuseWhatTheyCannotServe(t *testing.T) {
	t.Parallel()
	root := pki.NewCA(t, "cluster.local")
	dir := t.TempDir()
	credential(t, root, dir, "broken", "a.example.com")
	must(t, os.WriteFile(filepath.Join(dir, "broken", KeyFile), []byte("not a key"), 0o600))
	tests := []struct {
		name, dir, cred, want string
	}{
		{name: "a name with a path separator is no folder name", dir: dir, cred: "../etc", want: "not a folder name"},
		{name: "a missing folder names the file it missed", dir: dir, cred: "absent", want: filepath.Join(dir, "absent", CertFile)},
		{name: "a key that is not the certificate's is refused", dir: dir, cred: "broken", want: "tls.crt and " + filepath.Join(dir, "broken", KeyFile)},
		{name: "without --credentials-dir nothing can be read", dir: "", cred: "any", want: "no --credentials-dir"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewCredentials(tc.dir, nil).Get(tc.cred)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Get(%q) = %v, want an error saying %q", tc.cred, err, tc.want)
			}
		})
	}
}
