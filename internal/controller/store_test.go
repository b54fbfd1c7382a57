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

func TestStoreDiffFollowsTheLog(t *testing.T) {
	st := newStore("t")
	if _, err := st.update(map[string]proto.Message{"a": ns("a"), "b": ns("b"), "c": ns("c")}, nil); err != nil {
		t.Fatal(err)
	}
	known := map[string]string{}
	send, remove, rev := st.diff(known, 0)
	if got := names(send); !slices.Equal(got, []string{"a", "b", "c"}) || len(remove) != 0 {
		t.Fatalf("first diff: %v, removed %v", got, remove)
	}
	apply(known, send, remove)

	// The same content again is no change; a changed one and a removal are.
	if n, _ := st.update(map[string]proto.Message{"a": ns("a")}, nil); n != 0 {
		t.Errorf("an unchanged resource counted as %d changes", n)
	}
	if _, err := st.update(map[string]proto.Message{"b": ns("b2")}, []string{"c", "missing"}); err != nil {
		t.Fatal(err)
	}
	send, remove, rev2 := st.diff(known, rev)
	if got := names(send); !slices.Equal(got, []string{"b"}) || !slices.Equal(remove, []string{"c"}) {
		t.Errorf("incremental diff: send %v, remove %v; want [b], [c]", got, remove)
	}
	full, fullRemove, _ := st.diff(known, 0)
	if !slices.Equal(names(full), names(send)) || !slices.Equal(fullRemove, remove) {
		t.Errorf("incremental diff %v %v differs from the full one %v %v", names(send), remove, names(full), fullRemove)
	}
	apply(known, send, remove)
	if send, remove, _ := st.diff(known, rev2); len(send)+len(remove) != 0 {
		t.Errorf("nothing changed, yet %v %v", names(send), remove)
	}
}

func TestStoreDiffAfterTheLogIsTrimmed(t *testing.T) {
	st := newStore("t")
	st.update(map[string]proto.Message{"keep": ns("keep"), "gone": ns("gone")}, nil)
	known := map[string]string{}
	send, remove, rev := st.diff(known, 0)
	apply(known, send, remove)
	for i := range 3000 {
		st.update(map[string]proto.Message{"churn": ns(fmt.Sprint(i))}, nil)
	}
	st.update(nil, []string{"gone"})
	if st.logBase <= rev {
		t.Fatalf("log not trimmed: base %d, %d entries", st.logBase, len(st.log))
	}
	send, remove, _ = st.diff(known, rev)
	if got := names(send); !slices.Equal(got, []string{"churn"}) || !slices.Equal(remove, []string{"gone"}) {
		t.Errorf("diff of an agent behind the log: send %v, remove %v", got, remove)
	}
	apply(known, send, remove)
	want := map[string]string{}
	for n, r := range st.res {
		want[n] = r.GetVersion()
	}
	if !maps.Equal(known, want) {
		t.Errorf("agent holds %v, store %v", known, want)
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
