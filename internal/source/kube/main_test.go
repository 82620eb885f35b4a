package kube

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// istio.io/client-go's fake clientset predates the streaming list (WatchList) that client-go
	// now asks for first: it sends no initial-events bookmark, so the informers would wait for
	// ever. Off, they list and then watch, as against an older API server.
	os.Setenv("KUBE_FEATURE_WatchListClient", "false")
	goleak.VerifyTestMain(m)
}
