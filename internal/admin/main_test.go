package admin

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the admin servers, proxies,
// backends and client connections of every test must be gone once its cleanup ran.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
