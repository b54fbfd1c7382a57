package testutil

import (
	"sync"
	"time"
)

// Clock is a clock that tests move by hand; pass its Now where a component takes a clock.
// It is safe for concurrent use, since the component under test reads it from its own
// goroutines.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// ClockStart is where every NewClock starts: a fixed instant, so failures read the same on
// every run.
var ClockStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// NewClock returns a Clock standing at ClockStart.
func NewClock() *Clock { return &Clock{now: ClockStart} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
