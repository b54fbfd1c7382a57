package resolvconf

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a Watcher's goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
