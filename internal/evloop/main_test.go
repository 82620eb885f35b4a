package evloop

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a Group leaves a loop goroutine, or a test server one, behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
