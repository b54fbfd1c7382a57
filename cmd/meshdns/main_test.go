package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the tests when serve leaves a goroutine behind once it has returned.
// Goroutines running before any test (client-go's and klog's, started at init) are not serve's.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) }
