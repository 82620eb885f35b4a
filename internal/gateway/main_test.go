package gateway

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every server port,
// connection, credential watch and pooled upstream must be gone once its test's cleanup ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
