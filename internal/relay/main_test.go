package relay

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a relay leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
