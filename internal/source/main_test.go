package source_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Merge starts a goroutine per source that must end with its context.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
