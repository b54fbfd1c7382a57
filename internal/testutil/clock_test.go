package testutil

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := NewClock()
	if !c.Now().Equal(ClockStart) {
		t.Fatalf("new clock at %v, want %v", c.Now(), ClockStart)
	}
	c.Advance(90 * time.Second)
	if got := c.Now().Sub(ClockStart); got != 90*time.Second {
		t.Fatalf("after Advance(90s) the clock moved %v", got)
	}
	later := ClockStart.Add(time.Hour)
	c.Set(later)
	if !c.Now().Equal(later) {
		t.Fatalf("after Set the clock reads %v, want %v", c.Now(), later)
	}
}
