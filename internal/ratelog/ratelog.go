// Package ratelog limits how often a recurring failure is logged: at most one line per
// interval, carrying the number of occurrences suppressed since the previous line. Hot paths
// use it so that a failing upstream costs a log line per interval, not one per query.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter logs through log at most once per interval.
type Limiter struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// New returns a Limiter; now is the clock (time.Now when nil).
func New(log *slog.Logger, interval time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{log: log, interval: interval, now: now}
}

// Warn logs msg at warning level unless a line was logged less than an interval ago, in which
// case it only counts it.
func (l *Limiter) Warn(msg string, args ...any) { l.logAt(slog.LevelWarn, msg, args) }

// Error is Warn at error level.
func (l *Limiter) Error(msg string, args ...any) { l.logAt(slog.LevelError, msg, args) }

func (l *Limiter) logAt(level slog.Level, msg string, args []any) {
	l.mu.Lock()
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
