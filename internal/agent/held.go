package agent

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/meshdns/meshdns/internal/xds"
)

// entry is one resource held: its name, its version and its encoding as received, not its
// decoded object. The encoding is about a third of the size of the decoded object, and the
// table is rebuilt from every resource on each change anyway; decoding is cheap next to that.
// The three are copied into one buffer, b: one allocation per resource, which leaves the
// received message wholly garbage, and a 32-byte entry.
type entry struct {
	b                   []byte // name, version, encoding; never changed once made
	nameLen, versionLen uint16
}

// maxNameLen bounds a resource's name and version (an object's namespace/name is at most 317
// bytes).
const maxNameLen = 1 << 16

// newEntry holds a resource.
func newEntry(name, version string, value []byte) (entry, error) {
	if len(name) >= maxNameLen || len(version) >= maxNameLen {
		return entry{}, fmt.Errorf("resource name or version longer than %d bytes (%d and %d)", maxNameLen-1, len(name), len(version))
	}
	b := make([]byte, 0, len(name)+len(version)+len(value))
	b = append(append(append(b, name...), version...), value...)
	return entry{b: b, nameLen: uint16(len(name)), versionLen: uint16(len(version))}, nil
}

func (e entry) name() string {
	return unsafe.String(unsafe.SliceData(e.b), int(e.nameLen))
}

func (e entry) version() string {
	return unsafe.String(unsafe.SliceData(e.b[e.nameLen:]), int(e.versionLen))
}

// value is the resource's encoding, not to be changed.
func (e entry) value() []byte {
	return e.b[int(e.nameLen)+int(e.versionLen):]
}

// heldSet is the resources of one type sorted by name (xds.CompareNames), the order of the
// snapshot, and searched by name. A sorted slice rather than a map: a map's slots and growth
// took twice what the entries take, and a snapshot would sort its names again.
type heldSet []entry

func compareEntries(a, b entry) int { return xds.CompareNames(a.name(), b.name()) }

// find returns where name is, or would be, in s.
func (s heldSet) find(name string) (int, bool) {
	return slices.BinarySearchFunc(s, name, func(e entry, name string) int { return xds.CompareNames(e.name(), name) })
}

// apply returns s with upd added or replacing the entries of their names, then the names of
// del removed. s is changed in place; the result may be a new slice.
func (s heldSet) apply(upd []entry, del []string) heldSet {
	var added []entry
	for _, e := range upd {
		if i, ok := s.find(e.name()); ok {
			s[i] = e
		} else {
			added = append(added, e)
		}
	}
	if len(added) > 0 {
		s = merge(s, added)
	}
	if len(del) > 0 {
		gone := make(map[string]bool, len(del))
		for _, name := range del {
			gone[name] = true
		}
		s = slices.DeleteFunc(s, func(e entry) bool { return gone[e.name()] })
	}
	return s
}

// merge returns the entries of s and of added (new names; of one name listed twice, the
// last wins) in one sorted slice.
func merge(s heldSet, added []entry) heldSet {
	slices.SortStableFunc(added, compareEntries)
	out := make(heldSet, 0, len(s)+len(added))
	i := 0
	for j, e := range added {
		if j+1 < len(added) && added[j+1].name() == e.name() {
			continue
		}
		for i < len(s) && compareEntries(s[i], e) < 0 {
			out = append(out, s[i])
			i++
		}
		out = append(out, e)
	}
	return append(out, s[i:]...)
}
