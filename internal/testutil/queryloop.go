package testutil

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// QueryLoop asks at a steady rate, each lookup in a goroutine of its own so that a slow one
// does not delay the next, and tallies the outcomes: the load of the tests that replace or
// kill a serving meshdns.
type QueryLoop struct {
	ask      func(i, attempt int) (kind, detail string)
	attempts int
	stop     chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	sent     int
	answered int
	retried  int            // answered on a later attempt
	slowest  time.Duration  // of the lookups answered
	failures map[string]int // by the kind of the last attempt's failure
	first    []string       // the first few failures, in full
}

// StartQueryLoop starts lookup i every interval, each of up to attempts attempts. ask makes
// attempt number attempt (from 0) of lookup i and returns "" when it was answered right, else
// the kind of failure ("timeout", "SERVFAIL", ...) and its detail.
func StartQueryLoop(interval time.Duration, attempts int, ask func(i, attempt int) (kind, detail string)) *QueryLoop {
	l := &QueryLoop{ask: ask, attempts: attempts, stop: make(chan struct{}), failures: map[string]int{}}
	l.wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			l.mu.Lock()
			l.sent++
			l.mu.Unlock()
			l.wg.Go(func() { l.lookup(i) })
		}
	})
	return l
}

func (l *QueryLoop) lookup(i int) {
	start := time.Now()
	var kind, detail string
	for attempt := range l.attempts {
		if kind, detail = l.ask(i, attempt); kind == "" {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.answered++
			l.slowest = max(l.slowest, time.Since(start))
			if attempt > 0 {
				l.retried++
			}
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[kind]++
	if len(l.first) < 3 {
		l.first = append(l.first, kind+": "+detail)
	}
}

// Counts returns how many lookups were started, answered right, and failed.
func (l *QueryLoop) Counts() (sent, answered, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.failures {
		failed += n
	}
	return l.sent, l.answered, failed
}

// Halt stops starting lookups and waits for every one started to end.
func (l *QueryLoop) Halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *QueryLoop) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var kinds []string
	for k, n := range l.failures {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d sent, %d answered (%d on a later attempt, the slowest in %v), failures: [%s], first: %q",
		l.sent, l.answered, l.retried, l.slowest.Round(time.Millisecond), strings.Join(kinds, ", "), l.first)
}
