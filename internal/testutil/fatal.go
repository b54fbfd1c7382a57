package testutil

import (
	"runtime"
	"testing"
)

// fatalRecorder stands in for a test to check that a helper fails it: Fatalf records the
// failure and ends the goroutine, as testing does.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.failed = true
	f.TB.Logf("(expected) "+format, args...)
	runtime.Goexit()
}

// Fails reports whether fn fails the test it is given (through Fatalf), running it in a
// goroutine of its own so that the failure ends only that goroutine.
func Fails(t testing.TB, fn func(testing.TB)) bool {
	ft := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ft)
	}()
	<-done
	return ft.failed
}
