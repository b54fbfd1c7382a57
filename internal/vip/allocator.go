package vip

import (
	"cmp"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// DefaultQuarantine is how long a freed address stays reserved for its last key
// (--vip-quarantine): longer than any client caches an answer, so no client still holding
// the old answer reaches a different host at that address.
const DefaultQuarantine = time.Hour

// Claim is an eligible host now, as Claims derives it from a snapshot.
type Claim struct {
	Key Key
	// Created is the creation time of the oldest object naming the host; on conflicts the
	// older claim keeps the address.
	Created time.Time
	// Existing are addresses already recorded for the host (ServiceEntry status.addresses,
	// written by Istio or a previous writer). A key that holds nothing in a family adopts the
	// first of them that is in the pool and neither held by nor reserved for another key.
	Existing []netip.Addr
}

// Options configure an Allocator.
type Options struct {
	// V4 and V6 are the pools; the zero Prefix turns a family off. A pool written with host
	// bits set is masked.
	V4, V6 netip.Prefix
	// Quarantine is how long a freed address stays reserved for its last key; 0 means
	// DefaultQuarantine.
	Quarantine time.Duration
	// Now is the clock; nil means time.Now.
	Now     func() time.Time
	Metrics *Metrics     // may be nil
	Logger  *slog.Logger // may be nil
}

// Allocator leases addresses to keys. It is not safe for concurrent use: the single builder
// goroutine calls it (docs/architecture.md, Data flow); its metrics may be read from anywhere.
type Allocator struct {
	pools      []*pool // enabled families, IPv4 first
	quarantine time.Duration
	now        func() time.Time
	metrics    *Metrics
	log        *slog.Logger

	keys map[Key]*entry // claimed keys and keys holding a lease
	gen  uint64         // counts Allocate calls

	restored *State // applied by the first Allocate, when claims' ages are known
	started  bool   // Allocate has run
	dirty    bool   // State changed outside the pools (Restore dropped records)

	// provisional are the keys whose addresses AllocateProvisional placed by probing; partial
	// marks that call.
	provisional map[Key]bool
	partial     bool
}

// entry is what the allocator knows of one key. One map lookup per claim finds it, which
// keeps a steady-state Allocate of 60,000 keys cheap.
type entry struct {
	leases [2]lease // by pool.idx
	claim  *Claim   // the claim of the latest Allocate
	seen   uint64   // the Allocate generation that last claimed the key
}

// New validates the pools and returns an empty allocator. It does no I/O.
func New(o Options) (*Allocator, error) {
	a := &Allocator{quarantine: o.Quarantine, now: o.Now, metrics: o.Metrics, log: o.Logger,
		keys: map[Key]*entry{}}
	if a.quarantine <= 0 {
		a.quarantine = DefaultQuarantine
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	v4, err := newPool(IPv4, o.V4)
	if err != nil {
		return nil, err
	}
	v6, err := newPool(IPv6, o.V6)
	if err != nil {
		return nil, err
	}
	for _, p := range []*pool{v4, v6} {
		if p != nil {
			p.idx = len(a.pools)
			a.pools = append(a.pools, p)
		}
	}
	a.report()
	return a, nil
}

// clock returns now in UTC without a monotonic reading, so Since times survive a JSON round
// trip unchanged and compare with ==.
func (a *Allocator) clock() time.Time { return a.now().UTC().Round(0) }

func (a *Allocator) pool(f Family) *pool {
	for _, p := range a.pools {
		if p.family == f {
			return p
		}
	}
	return nil
}

// Allocate returns the leases of every claim and whether State changed since the previous
// call, so the caller persists only then. Keys missing from claims release their addresses
// into quarantine. A claim gets no lease in a family that is off or has no free address.
func (a *Allocator) Allocate(claims []Claim) (Assignments, bool) {
	now := a.clock()
	a.gen++
	list := a.index(claims)
	if !a.started {
		a.started = true
		a.applyRestored(now)
	}
	a.releaseGone(now)
	if !a.partial {
		a.yieldProvisional(list)
	}
	for _, p := range a.pools {
		p.expire(now, a.quarantine)
		a.assign(p, list, now)
	}
	changed := a.dirty
	a.dirty = false
	for _, p := range a.pools {
		changed = changed || p.changed
		p.changed = false
	}
	a.report()
	return a.assignments(list), changed
}

// AllocateProvisional is Allocate for claims that may lack some of the addresses recorded
// elsewhere (a source not read yet, such as the Kubernetes API while it syncs). A key it
// places by probing holds its address provisionally: the next Allocate gives that address to
// a key that records it (Existing), since that record was made without seeing this lease,
// and the provisional key moves. Keys given back their own address or adopting a recorded
// one are not provisional.
func (a *Allocator) AllocateProvisional(claims []Claim) (Assignments, bool) {
	a.partial = true
	defer func() { a.partial = false }()
	return a.Allocate(claims)
}

// yieldProvisional frees the provisional leases of addresses that another claimed key
// records, and ends provisional placement: Allocate then gives those addresses to the keys
// recording them (adoption comes before probing) and new ones to the keys that yielded.
func (a *Allocator) yieldProvisional(list []*entry) {
	if len(a.provisional) == 0 {
		return
	}
	for _, e := range list {
		for _, ip := range e.claim.Existing {
			for _, p := range a.pools {
				off, ok := p.offset(ip)
				holder, owned := p.owner[off]
				if !ok || !owned || holder == e.claim.Key || !a.provisional[holder] {
					continue
				}
				a.keys[holder].leases[p.idx] = lease{}
				delete(p.owner, off)
				p.changed = true
				a.log.Info("a provisional VIP goes to the host that records it", "address", ip,
					"to", e.claim.Key.String(), "from", holder.String())
			}
		}
	}
	a.provisional = nil
}

// index marks the claimed keys with this generation and returns their entries, one per key:
// duplicate claims merge (the oldest Created, all Existing addresses).
func (a *Allocator) index(claims []Claim) []*entry {
	list := make([]*entry, 0, len(claims))
	for i := range claims {
		c := &claims[i]
		e := a.keys[c.Key]
		if e == nil {
			e = &entry{}
			a.keys[c.Key] = e
		}
		if e.seen != a.gen {
			e.seen, e.claim = a.gen, c
			list = append(list, e)
			continue
		}
		merged := &Claim{Key: c.Key, Created: e.claim.Created, Existing: slices.Concat(e.claim.Existing, c.Existing)}
		if c.Created.Before(merged.Created) {
			merged.Created = c.Created
		}
		e.claim = merged
	}
	return list
}

// claimed returns k's entry when the current Allocate claims k.
func (a *Allocator) claimed(k Key) *entry {
	if e := a.keys[k]; e != nil && e.seen == a.gen {
		return e
	}
	return nil
}

func byAge(x, y *entry) int {
	if c := x.claim.Created.Compare(y.claim.Created); c != 0 {
		return c
	}
	return compareKeys(x.claim.Key, y.claim.Key)
}

func compareKeys(x, y Key) int {
	return cmp.Or(cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Host, y.Host))
}

// releaseGone quarantines the addresses of keys that are no longer claimed, forgets those
// keys and ends their exhaustion episodes.
func (a *Allocator) releaseGone(now time.Time) {
	for k, e := range a.keys {
		if e.seen == a.gen {
			continue
		}
		for _, p := range a.pools {
			if e.leases[p.idx].off != 0 {
				p.release(k, e, now)
				a.log.Debug("VIP released into quarantine", "key", k.String(), "family", p.family.String(),
					"until", now.Add(a.quarantine))
			}
		}
		delete(a.keys, k)
	}
	for _, p := range a.pools {
		for k := range p.failing {
			if a.claimed(k) == nil {
				delete(p.failing, k)
			}
		}
	}
}

// assign gives an address to every claimed key that holds none in p, oldest first, then in
// key order (only these are sorted: in a steady state, none). First the keys that get back
// their own reserved address or adopt a recorded one, so a fresh key never takes what an
// older record points at; then the rest, by first choice and probing.
func (a *Allocator) assign(p *pool, list []*entry, now time.Time) {
	var pending []*entry
	for _, e := range list {
		if e.leases[p.idx].off == 0 {
			pending = append(pending, e)
		}
	}
	slices.SortFunc(pending, byAge)
	rest := pending[:0]
	for _, e := range pending {
		k := e.claim.Key
		if off, ok := p.quarOf[k]; ok {
			p.take(k, e, off, now)
		} else if off, ok := p.adoptable(e.claim); ok {
			p.take(k, e, off, now)
		} else {
			rest = append(rest, e)
			continue
		}
		a.recovered(p, e)
	}
	for _, e := range rest {
		if p.freeCount() == 0 {
			a.exhausted(p, e.claim.Key)
			continue
		}
		p.take(e.claim.Key, e, p.probe(e.claim.Key), now)
		if a.partial {
			if a.provisional == nil {
				a.provisional = map[Key]bool{}
			}
			a.provisional[e.claim.Key] = true
		}
		a.recovered(p, e)
	}
}

// adoptable returns the first of c's recorded addresses that c may take in p.
func (p *pool) adoptable(c *Claim) (uint64, bool) {
	for _, ip := range c.Existing {
		off, ok := p.offset(ip)
		if !ok {
			continue
		}
		if _, owned := p.owner[off]; owned {
			continue
		}
		if f, reserved := p.quar[off]; reserved && f.key != c.Key {
			continue
		}
		return off, true
	}
	return 0, false
}

// exhausted starts (or continues) k's exhaustion episode: logged and counted once.
func (a *Allocator) exhausted(p *pool, k Key) {
	if _, ok := p.failing[k]; ok {
		return
	}
	p.failing[k] = struct{}{}
	a.metrics.failed(p.family)
	a.log.Warn("VIP pool exhausted: the host gets no address in this family until one frees up "+
		"(a freed address waits out the quarantine first); widen the pool or delete entries",
		"key", k.String(), "family", p.family.String(), "pool", p.prefix.String(),
		"held", len(p.owner), "quarantined", len(p.quar))
}

func (a *Allocator) recovered(p *pool, e *entry) {
	if _, ok := p.failing[e.claim.Key]; ok {
		delete(p.failing, e.claim.Key)
		a.log.Info("VIP pool has room again: the host got an address", "key", e.claim.Key.String(),
			"family", p.family.String(), "address", p.addr(e.leases[p.idx].off).String())
	}
}

// assignments lists the leases of the claimed keys, IPv4 first. One backing array serves
// every key, so a build costs a few allocations however many keys there are.
func (a *Allocator) assignments(list []*entry) Assignments {
	out := make(Assignments, len(list))
	all := make([]Lease, 0, len(list)*len(a.pools))
	for _, e := range list {
		start := len(all)
		for _, p := range a.pools {
			if l := e.leases[p.idx]; l.off != 0 {
				all = append(all, Lease{Addr: p.addr(l.off), Since: l.since})
			}
		}
		if len(all) > start {
			out[e.claim.Key] = all[start:len(all):len(all)]
		}
	}
	return out
}

func (a *Allocator) report() {
	for _, p := range a.pools {
		a.metrics.set(p.family, p.n, len(p.owner), len(p.quar))
	}
}

// NextRelease returns when the earliest quarantine ends, so that the caller allocates again
// then: a key left without an address by a full pool gets one as soon as one is free, without
// waiting for an unrelated change.
func (a *Allocator) NextRelease() (time.Time, bool) {
	var next time.Time
	for _, p := range a.pools {
		for _, f := range p.quar {
			if end := f.at.Add(a.quarantine); next.IsZero() || end.Before(next) {
				next = end
			}
		}
	}
	return next, !next.IsZero()
}
