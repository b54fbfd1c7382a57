package kube

import (
	"testing"

	"go.uber.org/goleak"
)

// The informers and the status writer run goroutines; none may outlive a test. Goroutines that
// client-go's and klog's package initialisation start are there before any test and stay.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, goleak.IgnoreCurrent()) }
