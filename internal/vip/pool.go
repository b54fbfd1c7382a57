package vip

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
)

// Family is an address family: IPv4 or IPv6.
type Family uint8

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// MarshalText writes "ipv4" or "ipv6", so the state file reads without a legend.
func (f Family) MarshalText() ([]byte, error) {
	if f != IPv4 && f != IPv6 {
		return nil, fmt.Errorf("unknown address family %d", uint8(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText reads what MarshalText writes.
func (f *Family) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ipv4":
		*f = IPv4
	case "ipv6":
		*f = IPv6
	default:
		return fmt.Errorf("unknown address family %q (want ipv4 or ipv6)", b)
	}
	return nil
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// maxOffsets caps the usable offsets of a huge IPv6 pool: offsets are uint64 and 2^63 - 1 of
// them are more than any mesh will ever hold.
const maxOffsets = 1<<63 - 1

// pool is one family's address range and who holds or recently held its addresses.
// Addresses are handled as offsets from the network address; the usable ones are 1..n, so the
// network address (0) and the last address of the pool are never handed out, and offset 0
// can mean "none".
//
// Invariant: an offset is in at most one of owner and quar; owner[off] == k exactly when
// k's entry holds off in slot idx.
type pool struct {
	family Family
	idx    int // the slot of this pool in entry.leases
	prefix netip.Prefix
	hi, lo uint64 // network address as a 128-bit number (IPv4 in lo)
	n      uint64 // usable offsets: 1..n

	owner   map[uint64]Key   // offset -> live key
	quar    map[uint64]freed // offset -> the key it is reserved for
	quarOf  map[Key]uint64   // key -> offset of its latest release
	failing map[Key]struct{} // keys in an exhaustion episode, logged once
	changed bool             // something persisted changed during this Allocate
}

// lease is an address held; off 0 means none.
type lease struct {
	off   uint64
	since time.Time
}

type freed struct {
	key Key
	at  time.Time
}

// CheckPool reports whether p can be the pool of family f: a valid CIDR of that family
// (not IPv4-mapped for IPv6) with at least two usable addresses. The zero Prefix, a family
// turned off, passes. Errors name the pool; the caller adds where it came from.
func CheckPool(f Family, p netip.Prefix) error {
	if p == (netip.Prefix{}) {
		return nil
	}
	if !p.IsValid() {
		return fmt.Errorf("pool %v: not a valid CIDR", p)
	}
	a := p.Addr()
	switch {
	case f == IPv4 && !a.Is4():
		return fmt.Errorf("pool %v: not an IPv4 CIDR", p)
	case f == IPv6 && (!a.Is6() || a.Is4In6()):
		return fmt.Errorf("pool %v: not an IPv6 CIDR", p)
	}
	if a.BitLen()-p.Bits() < 2 {
		return fmt.Errorf("pool %v: too small: the network and last addresses are never "+
			"handed out, so at least /%d is needed", p, a.BitLen()-2)
	}
	return nil
}

// newPool validates p for family f; the zero Prefix turns the family off (nil pool).
func newPool(f Family, p netip.Prefix) (*pool, error) {
	if err := CheckPool(f, p); err != nil {
		return nil, err
	}
	if p == (netip.Prefix{}) {
		return nil, nil
	}
	bits := p.Addr().BitLen() - p.Bits()
	pl := &pool{family: f, prefix: p.Masked(), n: maxOffsets}
	if bits <= 63 {
		pl.n = 1<<bits - 2
	}
	pl.hi, pl.lo = addrBits(pl.prefix.Addr())
	pl.reset()
	return pl, nil
}

func (p *pool) reset() {
	p.owner = map[uint64]Key{}
	p.quar = map[uint64]freed{}
	p.quarOf = map[Key]uint64{}
	p.failing = map[Key]struct{}{}
}

func addrBits(a netip.Addr) (hi, lo uint64) {
	if a.Is4() {
		b := a.As4()
		return 0, uint64(binary.BigEndian.Uint32(b[:]))
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
}

// addr returns the address at offset off (1 <= off <= n).
func (p *pool) addr(off uint64) netip.Addr {
	lo := p.lo + off
	hi := p.hi
	if lo < p.lo {
		hi++
	}
	if p.family == IPv4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// offset returns the offset of a, and false unless a is a usable address of the pool.
func (p *pool) offset(a netip.Addr) (uint64, bool) {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" || familyOf(a) != p.family || !p.prefix.Contains(a) {
		return 0, false
	}
	hi, lo := addrBits(a)
	off := lo - p.lo
	if lo < p.lo {
		hi--
	}
	if hi != p.hi || off < 1 || off > p.n {
		return 0, false
	}
	return off, true
}

// free reports whether off may go to any key: nobody holds it, nor is it reserved for anybody.
func (p *pool) free(off uint64) bool {
	_, owned := p.owner[off]
	_, reserved := p.quar[off]
	return !owned && !reserved
}

// freeCount is how many addresses a new key could get.
func (p *pool) freeCount() uint64 {
	return p.n - uint64(len(p.owner)) - uint64(len(p.quar))
}

// firstChoice is where probing for k starts: FNV-1a of "namespace/host" over the usable
// offsets, so every replica picks the same address for the same key in the same state.
func (p *pool) firstChoice(k Key) uint64 {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	for i := 0; i < len(k.Namespace); i++ {
		h = (h ^ uint64(k.Namespace[i])) * prime64
	}
	h = (h ^ '/') * prime64
	for i := 0; i < len(k.Host); i++ {
		h = (h ^ uint64(k.Host[i])) * prime64
	}
	return 1 + h%p.n
}

// probe returns the first free offset at or after k's first choice, wrapping around; the
// caller has checked that one exists.
func (p *pool) probe(k Key) uint64 {
	off := p.firstChoice(k)
	for !p.free(off) {
		off++
		if off > p.n {
			off = 1
		}
	}
	return off
}

func (p *pool) take(k Key, e *entry, off uint64, since time.Time) {
	p.unreserve(off)
	e.leases[p.idx] = lease{off: off, since: since}
	p.owner[off] = k
	p.changed = true
}

// release ends k's lease and reserves its address for k until the quarantine ends.
func (p *pool) release(k Key, e *entry, at time.Time) {
	off := e.leases[p.idx].off
	e.leases[p.idx] = lease{}
	delete(p.owner, off)
	p.reserve(off, k, at)
}

// reserve quarantines off for k from at, replacing any other reservation of off.
func (p *pool) reserve(off uint64, k Key, at time.Time) {
	p.unreserve(off)
	p.quar[off] = freed{key: k, at: at}
	if prev, ok := p.quarOf[k]; !ok || !p.quar[prev].at.After(at) {
		p.quarOf[k] = off
	}
	p.changed = true
}

func (p *pool) unreserve(off uint64) {
	f, ok := p.quar[off]
	if !ok {
		return
	}
	delete(p.quar, off)
	if p.quarOf[f.key] == off {
		delete(p.quarOf, f.key)
	}
	p.changed = true
}

// expire ends the reservations whose quarantine is over at now.
func (p *pool) expire(now time.Time, quarantine time.Duration) {
	for off, f := range p.quar {
		if !now.Before(f.at.Add(quarantine)) {
			p.unreserve(off)
		}
	}
}
