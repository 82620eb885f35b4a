package proxy

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/gopool"
)

// TestMain fails the package if any test leaves a goroutine behind: every listener, tunnel and
// pooled connection must be gone once its test's cleanup ran.
func TestMain(m *testing.M) {
	// The process's goroutine pool keeps idle goroutines for the next connection.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(gopool.WaitingFunction))
}
