package controller_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs the test binary as the fan-out benchmark's controller process when it is
// started with -fanout.controller (see fanout_test.go), so that the controller's CPU time,
// allocations and memory are measured apart from the agents'.
func TestMain(m *testing.M) {
	flag.Parse()
	if *fanoutControllerMode {
		os.Exit(runFanoutController())
	}
	os.Exit(m.Run())
}
