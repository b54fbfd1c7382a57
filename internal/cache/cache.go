package cache

import (
	"sync"
	"time"

	"github.com/meshdns/meshdns/internal/response"
	"github.com/miekg/dns"
)

const (
	// DefaultSize bounds each store (positive, negative) when Options.Size is 0.
	DefaultSize = 10000
	// DefaultMaxBytes bounds the estimated heap of both stores together when Options.MaxBytes
	// is 0: about 4,000 of the largest answers (8 KiB of 170 A records, 15 KB each), or 100,000
	// of one or two records.
	DefaultMaxBytes = 64 << 20
	// DefaultMaxTTL caps how long any answer is kept fresh when Options.MaxTTL is 0.
	DefaultMaxTTL = time.Hour
	// StaleTTL is the TTL, in seconds, of every record in a stale answer (RFC 8767 §4).
	StaleTTL = 30
	// ServfailTTL is how long a SERVFAIL is cached, to spare a failing upstream a retry storm
	// (RFC 2308 §7.1 allows up to 5 minutes; a short time keeps recovery quick).
	ServfailTTL = 5 * time.Second
	// PrefetchHits is how many times an entry must have been served before Lookup asks for a
	// refresh: names asked once are not worth an upstream query.
	PrefetchHits = 3
	// FailureRecheck is how long a stale entry whose refresh failed is served without asking
	// upstream again (RFC 8767 §5 recommends 30 s).
	FailureRecheck = 30 * time.Second
	// MaxEntryBytes bounds one cached message on the wire: larger answers (TCP allows 64 KiB)
	// are passed on but not kept, so one answer cannot take a large share of MaxBytes.
	MaxEntryBytes = 8192
	// prefetchMinTTL: entries shorter than this expire too fast for a refresh to help.
	prefetchMinTTL = 10
	// prefetchLeftPercent: a refresh is asked for once no more than this share of the TTL is left.
	prefetchLeftPercent = 10
)

// Options tunes a Cache. Zero values take the defaults, except ServeStale: 0 disables it.
type Options struct {
	Size       int              // max entries in EACH store; DefaultSize if 0; negative disables caching
	MaxBytes   int              // max estimated heap bytes of both stores together; DefaultMaxBytes if 0 or less
	MinTTL     time.Duration    // floor for positive TTLs
	MaxTTL     time.Duration    // ceiling for positive and negative TTLs; DefaultMaxTTL if 0 or less
	ServeStale time.Duration    // how long after expiry an entry may be served stale; 0 or less disables
	Now        func() time.Time // clock; time.Now if nil
	Metrics    *Metrics         // may be nil
}

// Status says what Lookup found.
type Status uint8

const (
	// Miss: nothing usable is cached.
	Miss Status = iota
	// Hit: a fresh answer, to be served as is.
	Hit
	// Stale: an expired answer within the serve-stale window, to be served only when every
	// upstream fails.
	Stale
)

func (s Status) String() string {
	switch s {
	case Hit:
		return "hit"
	case Stale:
		return "stale"
	default:
		return "miss"
	}
}

// Cache is a TTL cache of upstream answers, safe for concurrent use.
type Cache struct {
	minTTL, maxTTL uint32 // seconds
	serveStale     time.Duration
	now            func() time.Time
	metrics        *Metrics
	size, maxBytes int // bounds: entries per store, estimated bytes of both

	mu       sync.Mutex
	pos, neg *lru // nil when caching is disabled
	// refreshing holds the refreshes of stale entries in flight, by key, each closed when its
	// refresh ends. It is apart from the entries, which a Put or an eviction may replace
	// while a refresh runs; it holds no more keys than refreshes in flight.
	refreshing map[key]chan struct{}
}

// New returns an empty cache.
func New(o Options) *Cache {
	c := &Cache{
		minTTL:     seconds(o.MinTTL),
		maxTTL:     seconds(o.MaxTTL),
		serveStale: max(o.ServeStale, 0),
		now:        o.Now,
		metrics:    o.Metrics,
	}
	if o.MaxTTL <= 0 {
		c.maxTTL = seconds(DefaultMaxTTL)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.size, c.maxBytes = o.Size, o.MaxBytes
	if c.size == 0 {
		c.size = DefaultSize
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxBytes
	}
	if c.size > 0 {
		c.pos, c.neg = newLRU(), newLRU()
		c.refreshing = map[key]chan struct{}{}
	}
	return c
}

// seconds converts d to a TTL, capped at 2^31-1 (RFC 2181 §8).
func seconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32(min(d/time.Second, ttlLimit))
}

// Found is what Lookup found.
type Found struct {
	// Msg is the response to serve; nil on a Miss.
	Msg *dns.Msg
	// Status: Hit, a fresh entry with its TTLs counted down; Stale, an entry that expired less
	// than ServeStale ago, every TTL StaleTTL, to be served only when upstream fails; Miss.
	Status Status
	// Prefetch is true at most once per entry life: on a Hit once the entry has been served
	// PrefetchHits times and no more than 10% of a TTL of at least 10s is left, so the caller
	// can refresh it in the background. The next Put that stores an entry for the key re-arms
	// it.
	Prefetch bool
	// Until, for a Hit, is the instant up to which Lookup would return the same response
	// again: the end of the current second of the entry's countdown, so the TTLs are still
	// exact. It is zero while a prefetch is due, so that the Lookups that trigger it keep
	// coming.
	Until time.Time
}

// Lookup returns what the cache holds for req, as a response to req.
func (c *Cache) Lookup(req *dns.Msg) Found {
	if c.pos == nil || !isQuery(req) {
		c.metrics.got(Miss)
		return Found{}
	}
	k := keyOf(req)
	now := c.now()
	c.mu.Lock()
	var a *answer
	var f Found
	var elapsed time.Duration
	if e := c.lookup(k); e != nil {
		a = e.ans
		f.Status, elapsed = c.status(a, now)
		switch f.Status {
		case Miss:
			c.remove(e)
		case Hit:
			f.Prefetch = e.prefetch(elapsed)
			if !e.prefetchDue(elapsed) {
				f.Until = a.stored.Add(elapsed.Truncate(time.Second) + time.Second)
			}
		}
	}
	c.mu.Unlock()
	c.metrics.got(f.Status)
	if f.Status == Miss {
		return Found{}
	}
	// a is never modified after Put, so the copy is built without holding the lock.
	f.Msg = a.serve(req, elapsed, f.Status == Stale)
	return f
}

// Put stores upstream's response to req unless there is a reason not to: req is not a
// single-question QUERY; resp answers another question (RFC 5452 §3); resp is larger than
// MaxEntryBytes, or its estimated heap above MaxBytes (meshdns's own bounds on memory); the
// reply itself is not cacheable (response.Cacheability: truncated, negative without SOA, a
// CNAME chain that stops short of the asked type included, an error other than SERVFAIL); or
// its lifetime is 0 (RFC 1035 §3.2.1: a TTL of 0 is for the transaction in progress only).
func (c *Cache) Put(req, resp *dns.Msg) {
	if c.pos == nil || !isQuery(req) || !response.SameQuestion(resp, req) || resp.Len() > MaxEntryBytes {
		return
	}
	now := c.now()
	a := c.newAnswer(resp, now)
	if a == nil {
		return
	}
	k := keyOf(req)
	e := &entry{key: k, ans: a, size: answerBytes(a, k.qname)}
	if e.size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.lookup(k); old != nil {
		if a.kind == servfail && c.needed(old.ans, now) {
			return
		}
		c.remove(old)
	}
	s := c.store(a.kind)
	c.metrics.evicted(c.makeRoom(s, e.size))
	s.add(e)
	c.metrics.stores(c.pos, c.neg)
}

// makeRoom evicts least recently used entries until s can take one more of size bytes: s
// below Size entries, both stores together at most MaxBytes. Bytes are taken from the store
// that would hold more, so a store within half of MaxBytes never loses entries to a flood of
// the other kind (random names' NXDOMAINs cannot push out the positive answers). Callers hold
// mu; size is at most MaxBytes.
func (c *Cache) makeRoom(s *lru, size int) (evicted int) {
	for ; s.len() >= c.size; evicted++ {
		s.evictOldest()
	}
	other := c.neg
	if s == c.neg {
		other = c.pos
	}
	for ; s.bytes+other.bytes+size > c.maxBytes; evicted++ {
		if other.bytes > s.bytes+size || s.len() == 0 {
			other.evictOldest()
		} else {
			s.evictOldest()
		}
	}
	return evicted
}

// Len returns the number of entries in the positive and negative stores.
func (c *Cache) Len() (positive, negative int) {
	if c.pos == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos.len(), c.neg.len()
}

// Bytes returns the estimated heap held by the positive and negative stores.
func (c *Cache) Bytes() (positive, negative int) {
	if c.pos == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pos.bytes, c.neg.bytes
}

// status classifies a at now and returns the time since it was stored (never negative, so a
// clock stepping back cannot push TTLs above their original).
func (c *Cache) status(a *answer, now time.Time) (Status, time.Duration) {
	elapsed := max(now.Sub(a.stored), 0)
	life := time.Duration(a.ttl) * time.Second
	switch {
	case elapsed < life:
		return Hit, elapsed
	case a.kind != servfail && elapsed < life+c.serveStale:
		return Stale, elapsed
	}
	return Miss, elapsed
}

// needed reports whether a SERVFAIL must leave a alone: a is a real answer that Lookup could still
// return, fresh or stale.
func (c *Cache) needed(a *answer, now time.Time) bool {
	st, _ := c.status(a, now)
	return a.kind != servfail && st != Miss
}

// lookup finds k in whichever store holds it and marks it recently used. Callers hold mu.
func (c *Cache) lookup(k key) *entry {
	if e := c.pos.get(k); e != nil {
		return e
	}
	return c.neg.get(k)
}

// remove drops e from its store. Callers hold mu.
func (c *Cache) remove(e *entry) {
	c.store(e.ans.kind).remove(e.key)
	c.metrics.stores(c.pos, c.neg)
}

func (c *Cache) store(k kind) *lru {
	if k == positive {
		return c.pos
	}
	return c.neg
}

// entry is a stored answer and its per-life bookkeeping, guarded by Cache.mu.
type entry struct {
	key        key
	ans        *answer
	size       int // estimated heap bytes (answerBytes)
	hits       int
	prefetched bool
	failedAt   time.Time // last failed refresh of a stale entry
}

// RefreshFailed records that upstream could not refresh req's entry. For FailureRecheck
// afterwards, ShouldRefresh says no, so the stale answer goes out at once instead of every
// query waiting on a dead upstream again (RFC 8767 §5, failure recheck timer).
func (c *Cache) RefreshFailed(req *dns.Msg) {
	if c.pos == nil || !isQuery(req) {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refreshFailed(keyOf(req), now)
}

// refreshFailed is RefreshFailed for k; callers hold mu.
func (c *Cache) refreshFailed(k key, now time.Time) {
	if e := c.lookup(k); e != nil {
		e.failedAt = now
	}
}

// ShouldRefresh reports whether upstream should be asked to refresh req's stale entry: not
// within FailureRecheck of a failed refresh.
func (c *Cache) ShouldRefresh(req *dns.Msg) bool {
	if c.pos == nil || !isQuery(req) {
		return true
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shouldRefresh(keyOf(req), now)
}

// shouldRefresh is ShouldRefresh for k; callers hold mu.
func (c *Cache) shouldRefresh(k key, now time.Time) bool {
	e := c.lookup(k)
	return e == nil || e.failedAt.IsZero() || now.Sub(e.failedAt) >= FailureRecheck
}

// BeginRefresh decides who refreshes req's stale entry, so that a refresh is in flight at
// most once per key however many queries find it stale. start: the caller is to refresh it,
// and must call EndRefresh when done. Otherwise ended, when not nil, is closed once the
// refresh in flight ends (the caller may wait for it, then Lookup again); nil means no
// refresh is due (within FailureRecheck of a failed one): serve the stale answer now.
func (c *Cache) BeginRefresh(req *dns.Msg) (start bool, ended <-chan struct{}) {
	if c.pos == nil || !isQuery(req) {
		return true, make(chan struct{})
	}
	k := keyOf(req)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.refreshing[k]; ok {
		return false, ch
	}
	if !c.shouldRefresh(k, now) {
		return false, nil
	}
	ch := make(chan struct{})
	c.refreshing[k] = ch
	return true, ch
}

// EndRefresh ends a refresh of req's entry (a stale one BeginRefresh let start, or a
// prefetch): the queries waiting for it are woken, and a failed one is recorded as
// RefreshFailed does.
func (c *Cache) EndRefresh(req *dns.Msg, failed bool) {
	if c.pos == nil || !isQuery(req) {
		return
	}
	k := keyOf(req)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if failed { // before the waiters wake, so that none starts another refresh
		c.refreshFailed(k, now)
	}
	if ch, ok := c.refreshing[k]; ok {
		close(ch)
		delete(c.refreshing, k)
	}
}

// Flush drops every entry, for when the upstreams change: their answers may differ (a VPN's
// split horizon, a new corporate resolver).
func (c *Cache) Flush() {
	if c.pos == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pos.clear()
	c.neg.clear()
	c.metrics.stores(c.pos, c.neg)
}

// prefetch counts a Hit served elapsed after Put and reports whether this one should trigger
// the entry's only refresh.
func (e *entry) prefetch(elapsed time.Duration) bool {
	e.hits++
	if !e.prefetchDue(elapsed) || e.hits < PrefetchHits {
		return false
	}
	e.prefetched = true
	return true
}

// prefetchDue reports whether the entry, elapsed after Put, is in its prefetch window and has
// not been refreshed yet.
func (e *entry) prefetchDue(elapsed time.Duration) bool {
	life := time.Duration(e.ans.ttl) * time.Second
	left := life - elapsed
	return !e.prefetched && e.ans.ttl >= prefetchMinTTL && 100*left <= prefetchLeftPercent*life
}
