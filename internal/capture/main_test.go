package capture

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests: ExecRunner's command plumbing and the
// tests' waiters for the DNS servers they start in namespaces.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
