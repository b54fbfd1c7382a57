package admin

import "time"

// Defaults of Limits. The connection cap is far below any file descriptor limit meshdns runs
// with, so that operators' traffic can never take the descriptors DNS needs.
const (
	DefaultMaxConns          = 64
	DefaultMaxRequests       = 4
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	// DefaultWriteTimeout leaves a slow client time to read a large /debug/table.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultIdleTimeout keeps a scraper's keep-alive connection across a 15s scrape interval.
	DefaultIdleTimeout = 30 * time.Second
)

// Limits bound what admin clients may hold.
type Limits struct {
	// MaxConns caps open connections: when full, a new connection closes the one idle the
	// longest (or waiting for its first request), and is itself closed when none is idle.
	MaxConns int
	// MaxRequests caps /metrics and /debug/table requests in flight; over it: 503.
	MaxRequests int
	// Timeouts of http.Server: reading a request's header, the whole request, writing the
	// answer, and a keep-alive connection waiting for its next request.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxConns, DefaultMaxConns)
	def(&l.MaxRequests, DefaultMaxRequests)
	defDur(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	defDur(&l.ReadTimeout, DefaultReadTimeout)
	defDur(&l.WriteTimeout, DefaultWriteTimeout)
	defDur(&l.IdleTimeout, DefaultIdleTimeout)
	return l
}
