package agent

import (
	"slices"
	"testing"
)

func names(s heldSet) []string {
	var out []string
	for _, e := range s {
		out = append(out, e.name+"@"+e.version)
	}
	return out
}

// TestHeldSetKeepsSnapshotOrder: resources added, replaced and removed in any order stay
// sorted by namespace, then name (the order of the Kubernetes source's snapshot); a name
// listed twice in one response keeps its last version.
func TestHeldSetKeepsSnapshotOrder(t *testing.T) {
	var s heldSet
	s = s.apply([]entry{{name: "b/x", version: "1"}, {name: "a-b/x", version: "1"}, {name: "a/z", version: "1"}}, nil)
	s = s.apply([]entry{{name: "a/y", version: "1"}, {name: "a/z", version: "2"}, {name: "c/q", version: "1"},
		{name: "c/q", version: "2"}, {name: "a", version: "1"}}, nil)
	want := []string{"a@1", "a/y@1", "a/z@2", "a-b/x@1", "b/x@1", "c/q@2"}
	if got := names(s); !slices.Equal(got, want) {
		t.Errorf("after adds and a replace: %q, want %q", got, want)
	}
	s = s.apply([]entry{{name: "b/x", version: "3"}, {name: "d/new", version: "1"}}, []string{"a/y", "c/q", "not/held"})
	want = []string{"a@1", "a/z@2", "a-b/x@1", "b/x@3", "d/new@1"}
	if got := names(s); !slices.Equal(got, want) {
		t.Errorf("after a replace, an add and removals: %q, want %q", got, want)
	}
	if _, ok := s.find("a/y"); ok {
		t.Error("a removed name is still found")
	}
	if i, ok := s.find("b/x"); !ok || s[i].version != "3" {
		t.Errorf("b/x: found %v at %d", ok, i)
	}
}
