package controller

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"

	pb "github.com/meshdns/meshdns/api/meshdns/v1"
)

func ns(name string) proto.Message { return &pb.Namespace{Name: name} }

func names(rs []*discovery.Resource) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.GetName())
	}
	slices.Sort(out)
	return out
}

// apply brings known up to date with a diff's result, as an agent does.
func apply(known map[string]string, send []*discovery.Resource, remove []string) {
	for _, r := range send {
		known[r.GetName()] = r.GetVersion()
	}
	for _, n := range remove {
		delete(known, n)
	}
}

func TestStoreChangesFollowTheLog(t *testing.T) {
	st := newStore("t")
	if _, err := st.update(map[string]proto.Message{"a": ns("a"), "b": ns("b"), "c": ns("c")}, nil); err != nil {
		t.Fatal(err)
	}
	known := map[string]string{}
	send, remove, rev := st.compare(known)
	if got := names(send); !slices.Equal(got, []string{"a", "b", "c"}) || len(remove) != 0 {
		t.Fatalf("first comparison: %v, removed %v", got, remove)
	}
	apply(known, send, remove)

	// The same content again is no change; a changed one and a removal are.
	if n, _ := st.update(map[string]proto.Message{"a": ns("a")}, nil); n != 0 {
		t.Errorf("an unchanged resource counted as %d changes", n)
	}
	if _, err := st.update(map[string]proto.Message{"b": ns("b2")}, []string{"c", "missing"}); err != nil {
		t.Fatal(err)
	}
	send, remove, rev2, err := st.changes(rev)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(send); !slices.Equal(got, []string{"b"}) || !slices.Equal(remove, []string{"c"}) {
		t.Errorf("changes: send %v, remove %v; want [b], [c]", got, remove)
	}
	full, fullRemove, _ := st.compare(known)
	if !slices.Equal(names(full), names(send)) || !slices.Equal(fullRemove, remove) {
		t.Errorf("changes %v %v differ from a full comparison %v %v", names(send), remove, names(full), fullRemove)
	}
	apply(known, send, remove)
	if send, remove, _, _ := st.changes(rev2); len(send)+len(remove) != 0 {
		t.Errorf("nothing changed, yet %v %v", names(send), remove)
	}
	// Added and removed between two responses: a removal of a name the agent never had, which
	// the protocol lets it ignore; what it holds ends the same.
	st.update(map[string]proto.Message{"brief": ns("brief")}, nil)
	st.update(nil, []string{"brief"})
	send, remove, _, _ = st.changes(rev2)
	apply(known, send, remove)
	want := map[string]string{}
	for n, r := range st.res {
		want[n] = r.GetVersion()
	}
	if !maps.Equal(known, want) {
		t.Errorf("agent holds %v, store %v", known, want)
	}
}

func TestStoreSendsAnAgentBehindTheLogBack(t *testing.T) {
	st := newStore("t")
	st.update(map[string]proto.Message{"keep": ns("keep"), "gone": ns("gone")}, nil)
	_, _, rev := st.compare(nil)
	for i := range 3000 {
		st.update(map[string]proto.Message{"churn": ns(fmt.Sprint(i))}, nil)
	}
	if st.logBase <= rev {
		t.Fatalf("log not trimmed: base %d, %d entries", st.logBase, len(st.log))
	}
	if _, _, _, err := st.changes(rev); err != errBehind {
		t.Errorf("changes of an agent behind the log: %v, want errBehind (it reconnects with its versions)", err)
	}
	if len(st.log) > 2*len(st.res)+1024 {
		t.Errorf("log of %d entries for %d resources", len(st.log), len(st.res))
	}
}

func TestVersionsAreTheContents(t *testing.T) {
	a, b := newStore("t"), newStore("t")
	a.update(map[string]proto.Message{"x": ns("x")}, nil)
	b.update(map[string]proto.Message{"y": ns("y")}, nil)
	b.update(map[string]proto.Message{"x": ns("x")}, nil)
	if a.res["x"].GetVersion() != b.res["x"].GetVersion() {
		t.Error("two stores give one content two versions: an agent moving between replicas would be sent it again")
	}
}
