package proxy

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every listener, tunnel and
// pooled connection must be gone once its test's cleanup ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
