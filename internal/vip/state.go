package vip

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// StateVersion is the version of the State layout written now.
const StateVersion = 1

// State is what an Allocator must remember across restarts: who holds which address since
// when, and which freed addresses are still reserved for their last key. It marshals to
// JSON that an operator can read; State() lists records in a fixed order, so equal states
// marshal to equal bytes.
type State struct {
	Version  int             `json:"version"`
	Leases   []LeaseRecord   `json:"leases"`
	Released []ReleaseRecord `json:"released"`
}

// LeaseRecord is one address held by a key.
type LeaseRecord struct {
	Namespace string     `json:"namespace"`
	Host      string     `json:"host"`
	Family    Family     `json:"family"`
	Address   netip.Addr `json:"address"`
	Since     time.Time  `json:"since"`
}

// ReleaseRecord is an address in quarantine: reserved for the key that last held it until
// ReleasedAt plus the quarantine.
type ReleaseRecord struct {
	Namespace  string     `json:"namespace"`
	Host       string     `json:"host"`
	Address    netip.Addr `json:"address"`
	ReleasedAt time.Time  `json:"releasedAt"`
}

func (r LeaseRecord) key() Key   { return Key{Namespace: r.Namespace, Host: r.Host} }
func (r ReleaseRecord) key() Key { return Key{Namespace: r.Namespace, Host: r.Host} }

// Store keeps State between runs: a file in --state-dir now, ServiceEntry status.addresses
// in Kubernetes mode later.
type Store interface {
	// Load returns the saved state; nothing saved yet is an empty State and no error.
	Load() (State, error)
	Save(State) error
}

// State returns everything Restore needs to continue where this allocator is. Before the
// first Allocate it is the restored state, less what Restore dropped.
func (a *Allocator) State() State {
	if a.restored != nil {
		return canonical(*a.restored)
	}
	// Sorting the keys, not the records, halves what is sorted: pools are in address order.
	keys := make([]Key, 0, len(a.keys))
	for k, e := range a.keys {
		if e.leases != [2]lease{} {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, compareKeys)
	s := State{Version: StateVersion, Leases: make([]LeaseRecord, 0, len(keys)*len(a.pools)),
		Released: []ReleaseRecord{}}
	for _, k := range keys {
		e := a.keys[k]
		for _, p := range a.pools {
			if l := e.leases[p.idx]; l.off != 0 {
				s.Leases = append(s.Leases, LeaseRecord{Namespace: k.Namespace, Host: k.Host,
					Family: p.family, Address: p.addr(l.off), Since: l.since})
			}
		}
	}
	for _, p := range a.pools {
		for off, f := range p.quar {
			s.Released = append(s.Released, ReleaseRecord{Namespace: f.key.Namespace,
				Host: f.key.Host, Address: p.addr(off), ReleasedAt: f.at})
		}
	}
	slices.SortFunc(s.Released, compareReleases)
	return s
}

// canonical sorts a copy of s by key, then family and address.
func canonical(s State) State {
	s.Version = StateVersion
	s.Leases = slices.Clone(s.Leases)
	s.Released = slices.Clone(s.Released)
	if s.Leases == nil {
		s.Leases = []LeaseRecord{}
	}
	if s.Released == nil {
		s.Released = []ReleaseRecord{}
	}
	slices.SortFunc(s.Leases, func(x, y LeaseRecord) int {
		return cmp.Or(compareKeys(x.key(), y.key()), x.Address.Compare(y.Address))
	})
	slices.SortFunc(s.Released, compareReleases)
	return s
}

func compareReleases(x, y ReleaseRecord) int {
	return cmp.Or(compareKeys(x.key(), y.key()), x.Address.Compare(y.Address))
}

// Restore loads persisted state. Call it once, before the first Allocate: the claims' ages,
// which settle conflicts, are known only then. Records outside the current pools (the pool
// was changed), network or last addresses and records of an unknown version are dropped.
// Times after now (a clock that was set wrong, an edited file) are taken as now, so no
// quarantine outlasts now + the quarantine.
func (a *Allocator) Restore(s State) {
	if a.started {
		a.log.Error("VIP state restored after the first allocation; ignored")
		return
	}
	if s.Version != 0 && s.Version != StateVersion {
		a.log.Warn("VIP state has an unknown version; starting from an empty one",
			"version", s.Version, "want", StateVersion)
		a.restored, a.dirty = &State{}, true
		return
	}
	kept, clamped := a.usableRecords(s)
	if dropped := len(s.Leases) - len(kept.Leases) + len(s.Released) - len(kept.Released); dropped > 0 {
		a.dirty = true
		a.log.Warn("VIP state: dropped records outside the current pools",
			"dropped", dropped, "pools", a.poolNames())
	}
	if clamped > 0 {
		a.dirty = true
		a.log.Warn("VIP state: times in the future taken as now; their quarantines end by now + "+
			"the quarantine", "records", clamped, "now", a.clock(), "quarantine", a.quarantine)
	}
	a.restored = &kept
}

// usableRecords returns the records of s that fit the current pools, in UTC and no later
// than now, and how many times it moved back to now.
func (a *Allocator) usableRecords(s State) (kept State, clamped int) {
	now := a.clock()
	notAfterNow := func(t time.Time) time.Time {
		if t = t.UTC().Round(0); t.After(now) {
			clamped++
			return now
		}
		return t
	}
	kept.Version = StateVersion
	for _, l := range s.Leases {
		if p := a.usable(l.Address, l.Host); p != nil && (l.Family == 0 || l.Family == p.family) {
			l.Family, l.Since = p.family, notAfterNow(l.Since)
			kept.Leases = append(kept.Leases, l)
		}
	}
	for _, r := range s.Released {
		if a.usable(r.Address, r.Host) != nil {
			r.ReleasedAt = notAfterNow(r.ReleasedAt)
			kept.Released = append(kept.Released, r)
		}
	}
	return kept, clamped
}

// usable returns the pool in which addr may be handed out to host, or nil.
func (a *Allocator) usable(addr netip.Addr, host string) *pool {
	if host == "" || !addr.IsValid() {
		return nil
	}
	p := a.pool(familyOf(addr.Unmap()))
	if p == nil {
		return nil
	}
	if _, ok := p.offset(addr); !ok {
		return nil
	}
	return p
}

func (a *Allocator) poolNames() []string {
	var out []string
	for _, p := range a.pools {
		out = append(out, p.prefix.String())
	}
	return out
}
