package evloop

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/gopool"
)

// TestMain fails the package if a Group leaves a loop goroutine, or a test server one, behind.
func TestMain(m *testing.M) {
	// Handoff runs on the process's goroutine pool, which keeps idle goroutines for the next task.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(gopool.WaitingFunction))
}
