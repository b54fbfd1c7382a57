package fairshare

import "sync"

// Refusal says why Acquire did not admit a key; Admitted when it did.
type Refusal int

const (
	Admitted Refusal = iota
	// Full: every slot is taken.
	Full
	// Share: the key holds its share while other keys may need theirs.
	Share
)

func (r Refusal) String() string {
	switch r {
	case Full:
		return "full"
	case Share:
		return "share"
	}
	return "admitted"
}

// Counter counts the slots held, in all and by key, out of Max. It is safe for concurrent
// use; the zero value admits nothing.
type Counter[K comparable] struct {
	max int

	mu    sync.Mutex
	total int
	held  map[K]int
}

// New returns a Counter of max slots.
func New[K comparable](max int) *Counter[K] {
	return &Counter[K]{max: max, held: map[K]int{}}
}

// Acquire takes one slot for k, or says why not. Every admitted Acquire is matched by one
// Release of the same key.
func (c *Counter[K]) Acquire(k K) Refusal {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.held[k]
	switch {
	case c.total >= c.max:
		return Full
	case n > 0 && n >= c.max/(len(c.held)+1):
		return Share
	}
	c.held[k] = n + 1
	c.total++
	return Admitted
}

// Release gives back a slot k took.
func (c *Counter[K]) Release(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.held[k]
	if !ok {
		panic("fairshare: Release without Acquire")
	}
	c.total--
	if n <= 1 {
		delete(c.held, k)
		return
	}
	c.held[k] = n - 1
}

// Total is the number of slots held.
func (c *Counter[K]) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// Held is the number of slots k holds.
func (c *Counter[K]) Held(k K) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[k]
}

// Keys is the number of keys holding slots.
func (c *Counter[K]) Keys() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}
