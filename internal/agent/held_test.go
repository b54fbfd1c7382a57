package agent

import (
	"slices"
	"strings"
	"testing"
)

func ent(name, version string) entry {
	e, err := newEntry(name, version, []byte("value of "+name))
	if err != nil {
		panic(err)
	}
	return e
}

func names(s heldSet) []string {
	var out []string
	for _, e := range s {
		out = append(out, e.name()+"@"+e.version())
	}
	return out
}

// TestHeldSetKeepsSnapshotOrder: resources added, replaced and removed in any order stay
// sorted by namespace, then name (the order of the Kubernetes source's snapshot); a name
// listed twice in one response keeps its last version.
func TestHeldSetKeepsSnapshotOrder(t *testing.T) {
	var s heldSet
	s = s.apply([]entry{ent("b/x", "1"), ent("a-b/x", "1"), ent("a/z", "1")}, nil)
	s = s.apply([]entry{ent("a/y", "1"), ent("a/z", "2"), ent("c/q", "1"),
		ent("c/q", "2"), ent("a", "1")}, nil)
	want := []string{"a@1", "a/y@1", "a/z@2", "a-b/x@1", "b/x@1", "c/q@2"}
	if got := names(s); !slices.Equal(got, want) {
		t.Errorf("after adds and a replace: %q, want %q", got, want)
	}
	s = s.apply([]entry{ent("b/x", "3"), ent("d/new", "1")}, []string{"a/y", "c/q", "not/held"})
	want = []string{"a@1", "a/z@2", "a-b/x@1", "b/x@3", "d/new@1"}
	if got := names(s); !slices.Equal(got, want) {
		t.Errorf("after a replace, an add and removals: %q, want %q", got, want)
	}
	if _, ok := s.find("a/y"); ok {
		t.Error("a removed name is still found")
	}
	if i, ok := s.find("b/x"); !ok || s[i].version() != "3" {
		t.Errorf("b/x: found %v at %d", ok, i)
	}
}

// TestEntryCopiesWhatItHolds: an entry gives back the name, version and encoding it was made
// of, keeps them when the received bytes are reused, and refuses a name longer than it holds.
func TestEntryCopiesWhatItHolds(t *testing.T) {
	value := []byte{1, 2, 3}
	e, err := newEntry("ns/svc", "v1", value)
	if err != nil {
		t.Fatal(err)
	}
	value[0] = 9
	if e.name() != "ns/svc" || e.version() != "v1" || !slices.Equal(e.value(), []byte{1, 2, 3}) {
		t.Errorf("entry holds %q, %q, %v; want ns/svc, v1, [1 2 3]", e.name(), e.version(), e.value())
	}
	if e, err := newEntry("", "", nil); err != nil || e.name() != "" || e.version() != "" || len(e.value()) != 0 {
		t.Errorf("empty entry: %q, %q, %v, %v", e.name(), e.version(), e.value(), err)
	}
	if _, err := newEntry(strings.Repeat("x", maxNameLen), "v1", nil); err == nil {
		t.Error("a name of 64 KiB was held")
	}
}
