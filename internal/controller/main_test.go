package controller_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain runs the test binary as the fan-out benchmark's controller process when it is
// started with -fanout.controller (fanout_test.go), and as a process whose memory is measured
// when started with -memory.mode (memory_test.go).
func TestMain(m *testing.M) {
	flag.Parse()
	switch {
	case *fanoutControllerMode:
		os.Exit(runFanoutController())
	case *memoryMode != "":
		os.Exit(runMemoryProcess())
	}
	os.Exit(m.Run())
}
