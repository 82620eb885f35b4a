package relay

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/meshentry/meshentry/internal/gopool"
)

// TestMain fails the package if a relay leaves a goroutine behind.
func TestMain(m *testing.M) {
	// The process's goroutine pool keeps idle goroutines for the next connection.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(gopool.WaitingFunction))
}
