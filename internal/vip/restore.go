package vip

import (
	"cmp"
	"slices"
	"time"
)

// applyRestored installs the restored state at the first Allocate. Leases of claimed keys
// come back as they were (Since included); when two keys claim one address the older claim,
// then the smaller key, keeps it and the other is served later like a new key. Leases of keys
// that are no longer claimed are released now: they may have gone away at any time while we
// were down, and clients may still cache them.
func (a *Allocator) applyRestored(now time.Time) {
	s := a.restored
	a.restored = nil
	if s == nil {
		return
	}
	leases := slices.Clone(s.Leases)
	slices.SortFunc(leases, a.compareRestored)
	var gone []LeaseRecord
	for _, l := range leases {
		if a.claimed(l.key()) == nil {
			gone = append(gone, l)
			continue
		}
		a.restoreLease(l)
	}
	a.restoreReleases(s.Released)
	// What was restored as it was persisted is no change; drops set a.dirty.
	for _, p := range a.pools {
		p.changed = false
	}
	for _, l := range gone {
		p := a.pool(l.Family)
		off, _ := p.offset(l.Address)
		if _, owned := p.owner[off]; owned {
			a.dirty = true
			continue
		}
		p.reserve(off, l.key(), now)
	}
}

// compareRestored orders leases so that conflicts resolve as docs/vips.md says: claimed keys
// first, older claims first, then key order; one key's oldest lease in a family first.
func (a *Allocator) compareRestored(x, y LeaseRecord) int {
	cx, cy := a.claimed(x.key()), a.claimed(y.key())
	switch {
	case cx != nil && cy == nil:
		return -1
	case cx == nil && cy != nil:
		return 1
	case cx != nil:
		if c := cx.claim.Created.Compare(cy.claim.Created); c != 0 {
			return c
		}
	}
	return cmp.Or(compareKeys(x.key(), y.key()), cmp.Compare(x.Family, y.Family),
		x.Since.Compare(y.Since), x.Address.Compare(y.Address))
}

func (a *Allocator) restoreLease(l LeaseRecord) {
	p := a.pool(l.Family)
	off, _ := p.offset(l.Address)
	k := l.key()
	e := a.claimed(k)
	if e.leases[p.idx].off != 0 {
		a.dirty = true // a second address of one key in one family: keep the oldest
		return
	}
	if holder, owned := p.owner[off]; owned {
		a.dirty = true
		a.log.Warn("VIP state: two hosts claim one address; the older keeps it, the other "+
			"gets a new one", "address", l.Address.String(), "keeps", holder.String(), "loses", k.String())
		return
	}
	e.leases[p.idx] = lease{off: off, since: l.Since}
	p.owner[off] = k
}

// restoreReleases reserves the restored quarantined addresses that no restored lease holds;
// of two reservations of one address the later release wins, as it protects longer.
func (a *Allocator) restoreReleases(released []ReleaseRecord) {
	rs := slices.Clone(released)
	slices.SortFunc(rs, func(x, y ReleaseRecord) int {
		return cmp.Or(x.ReleasedAt.Compare(y.ReleasedAt), compareKeys(x.key(), y.key()))
	})
	for _, r := range rs {
		p := a.pool(familyOf(r.Address.Unmap()))
		off, _ := p.offset(r.Address)
		_, owned := p.owner[off]
		_, reserved := p.quar[off]
		if owned || reserved {
			a.dirty = true
		}
		if !owned {
			p.reserve(off, r.key(), r.ReleasedAt)
		}
	}
}
