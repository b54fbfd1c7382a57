package cache

import (
	"container/list"
	"reflect"
	"unsafe"

	"github.com/miekg/dns"
)

// What a stored answer costs is estimated from the Go objects it keeps, not from its wire
// size: a 45-byte A record on the wire is a 64-byte struct, its owner name and a 4-byte
// address in the heap, behind a 16-byte interface in its section's slice. The estimate is
// checked against runtime.MemStats for several shapes (TestEntryBytesEstimate); it stays
// within 25% of the heap an entry holds.

// entryOverhead is what every entry holds besides its name and records: the entry and answer
// structs, the LRU list element, and its slot in the store's map, counted twice since a map
// grows by doubling and so runs between half and fully used.
var entryOverhead = alloc(int(unsafe.Sizeof(entry{}))) + alloc(int(unsafe.Sizeof(answer{}))) +
	alloc(int(unsafe.Sizeof(list.Element{}))) + 2*int(unsafe.Sizeof(key{})+unsafe.Sizeof(&list.Element{}))

// ifaceSize is the slot a record takes in its section's []dns.RR.
const ifaceSize = int(unsafe.Sizeof(dns.RR(nil)))

// answerBytes estimates the heap held by a, stored under qname.
func answerBytes(a *answer, qname string) int {
	return entryOverhead + alloc(len(qname)) + sectionBytes(a.answer) + sectionBytes(a.ns) + sectionBytes(a.extra)
}

// sectionBytes estimates the heap held by a stored section: its slice, and each record. An
// owner name is counted once for a run of records that share it (copyRRs makes them share).
func sectionBytes(rrs []dns.RR) int {
	n := alloc(cap(rrs) * ifaceSize)
	prev := ""
	for _, rr := range rrs {
		v := reflect.ValueOf(rr).Elem()
		n += alloc(int(v.Type().Size())) + outOfLine(v, 0)
		// The header's name was counted by outOfLine: take it back when shared.
		if name := rr.Header().Name; name == prev && unsafe.StringData(name) == unsafe.StringData(prev) {
			n -= alloc(len(name))
		} else {
			prev = name
		}
	}
	return n
}

// maxDepth bounds the walk of outOfLine; no record type nests deeper.
const maxDepth = 8

// outOfLine estimates the heap v refers to beyond its own size: string bytes, slice backing
// arrays and what their elements refer to, pointed-to values. Any record type is walked the
// same way, so a new type in miekg/dns is counted without a change here.
func outOfLine(v reflect.Value, depth int) int {
	if depth > maxDepth {
		return 0
	}
	switch v.Kind() {
	case reflect.String:
		return alloc(v.Len())
	case reflect.Slice:
		if v.Cap() == 0 {
			return 0
		}
		n := alloc(v.Cap() * int(v.Type().Elem().Size()))
		if hasPointers(v.Type().Elem().Kind()) {
			for i := range v.Len() {
				n += outOfLine(v.Index(i), depth+1)
			}
		}
		return n
	case reflect.Struct:
		n := 0
		for i := range v.NumField() {
			n += outOfLine(v.Field(i), depth+1)
		}
		return n
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		if v.Kind() == reflect.Interface && e.Kind() == reflect.Pointer {
			return outOfLine(e, depth+1)
		}
		return alloc(int(e.Type().Size())) + outOfLine(e, depth+1)
	}
	return 0
}

// hasPointers reports whether values of kind k may refer to more memory.
func hasPointers(k reflect.Kind) bool {
	switch k {
	case reflect.String, reflect.Slice, reflect.Struct, reflect.Pointer, reflect.Interface:
		return true
	}
	return false
}

// alloc rounds an allocation of n bytes up as Go's allocator does, near enough: its size
// classes are 8 and 16 bytes apart up to 256, then about an eighth of the size apart.
func alloc(n int) int {
	if n <= 0 {
		return 0
	}
	if n <= 8 {
		return 8
	}
	step := 16
	for limit := 256; n > limit; limit *= 2 {
		step *= 2
	}
	return (n + step - 1) &^ (step - 1)
}
