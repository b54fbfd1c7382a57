package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second, func() time.Time { return now })
	for range 100 {
		l.Warn("upstream failed", "err", "timeout")
	}
	now = now.Add(11 * time.Second)
	l.Warn("upstream failed", "err", "timeout")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[1], "suppressed=99") {
		t.Errorf("lines = %q", lines)
	}
}

func TestLimiterLevels(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), 10*time.Second, nil)
	l.Error("query panicked")
	l.Warn("query panicked")
	if got := buf.String(); !strings.Contains(got, "level=ERROR") || strings.Count(got, "\n") != 1 {
		t.Errorf("logged %q, want one line at level ERROR", got)
	}
}
