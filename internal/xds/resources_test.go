package xds

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/meshdns/meshdns/internal/model"
)

var created = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func meta(ns, name string, labels map[string]string) model.Meta {
	return model.Meta{Namespace: ns, Name: name, Labels: labels, Created: created}
}

// fullSnapshot sets every field of every kind, so that a field the messages forget fails the
// round trip.
func fullSnapshot() model.Snapshot {
	a4, a6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")
	ports := []model.Port{{Name: "http", Protocol: "TCP", Number: 80}, {Name: "dns", Protocol: "UDP", Number: 53}}
	we := model.WorkloadEndpoint{Address: "10.1.0.1", Labels: map[string]string{"app": "vm"},
		Ports: map[string]uint32{"http": 8080}, Network: "net1"}
	return model.Snapshot{
		Namespaces: []model.Namespace{{Name: "a"}, {Name: "b"}},
		Services: []model.Service{
			{Meta: meta("a", "db", nil), Headless: true},
			{Meta: meta("a", "web", map[string]string{"x": "y"}), Type: model.ServiceTypeClusterIP,
				ClusterIPs: []netip.Addr{a4, a6}, Ports: ports, PublishNotReady: true},
			{Meta: meta("b", "ext", nil), Type: model.ServiceTypeExternalName, ExternalName: "example.org"},
		},
		EndpointSlices: []model.EndpointSlice{{Meta: meta("a", "db-x1", nil), ServiceName: "db", Ports: ports,
			Endpoints: []model.Endpoint{
				{Addresses: []netip.Addr{a4}, Ready: true, Hostname: "db-0", TargetRef: &model.ObjectRef{Kind: "Pod", Namespace: "a", Name: "db-0"}},
				{Addresses: []netip.Addr{a6}},
			}}},
		Pods: []model.Pod{
			{Meta: meta("a", "db-0", nil), IPs: []netip.Addr{a4, a6}, Hostname: "db-0", Subdomain: "db"},
			{Meta: meta("b", "selected", map[string]string{"app": "legacy"}), IPs: []netip.Addr{a4}},
		},
		ServiceEntries: []model.ServiceEntry{
			{Meta: meta("b", "private", nil), Hosts: []string{"db.example.com"}, ExportTo: []string{"."},
				Resolution: model.ResolutionDNS, Location: model.LocationInternal},
			{Meta: meta("b", "public", nil), Hosts: []string{"api.example.com", "*.wild.example.com"},
				Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")},
				Ports:     ports, Location: model.LocationExternal, Resolution: model.ResolutionStatic,
				Endpoints: []model.WorkloadEndpoint{we}, WorkloadSelector: map[string]string{"app": "legacy"},
				StatusAddresses: []model.HostAddress{{Host: "api.example.com", Address: netip.MustParseAddr("240.240.0.1")}}},
		},
		WorkloadEntries: []model.WorkloadEntry{{Meta: meta("b", "vm1", map[string]string{"app": "legacy"}), WorkloadEndpoint: we}},
	}
}

// wire sends every resource through its encoding, as a controller and an agent do.
func wire(t *testing.T, r Resources, namespace string) model.Snapshot {
	t.Helper()
	var res []Encoded
	add := func(typeURL string, set Set) {
		for _, name := range slices.SortedFunc(maps.Keys(set), CompareNames) {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(set[name])
			if err != nil {
				t.Fatalf("%s %s: %v", typeURL, name, err)
			}
			res = append(res, Encoded{typeURL, b})
		}
	}
	for _, typeURL := range Types {
		if typeURL == TypeScopedServiceEntry {
			add(typeURL, r.Scoped[namespace])
		} else {
			add(typeURL, r.Shared[typeURL])
		}
	}
	snap, err := SnapshotOf(res)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestRoundTripKeepsEveryField(t *testing.T) {
	snap := fullSnapshot()
	got := wire(t, Split(snap), "b")
	if !reflect.DeepEqual(got, snap) {
		t.Errorf("after the wire:\n%+v\nwant\n%+v", got, snap)
	}
}

func TestScopedEntriesReachOnlyTheirNamespaces(t *testing.T) {
	snap := fullSnapshot()
	snap.ServiceEntries = append(snap.ServiceEntries,
		model.ServiceEntry{Meta: meta("c", "listed", nil), Hosts: []string{"l.example.com"}, ExportTo: []string{"a", "."}},
		model.ServiceEntry{Meta: meta("c", "nobody", nil), Hosts: []string{"n.example.com"}, ExportTo: []string{"~"}},
		model.ServiceEntry{Meta: meta("c", "star", nil), Hosts: []string{"s.example.com"}, ExportTo: []string{"b", "*"}},
	)
	r := Split(snap)
	names := func(ns string) []string {
		var out []string
		for _, se := range wire(t, r, ns).ServiceEntries {
			out = append(out, se.Name)
		}
		return out
	}
	for ns, want := range map[string][]string{
		"a": {"public", "listed", "star"},
		"b": {"private", "public", "star"},
		"c": {"public", "listed", "star"},
		"z": {"public", "star"},
	} {
		if got := names(ns); !reflect.DeepEqual(got, want) {
			t.Errorf("namespace %s receives %v, want %v", ns, got, want)
		}
	}
	if _, ok := r.Scoped["~"]; !ok {
		t.Errorf("exportTo ~ should name no real namespace but be kept apart: %v", r.Scoped)
	}
}

func TestPodsThatCannotChangeANameStayHome(t *testing.T) {
	snap := fullSnapshot()
	snap.Pods = append(snap.Pods,
		model.Pod{Meta: meta("a", "plain", map[string]string{"app": "legacy"}), IPs: []netip.Addr{netip.MustParseAddr("10.9.9.9")}},
		model.Pod{Meta: meta("a", "hostname-only", nil), Hostname: "h"},
	)
	r := Split(snap)
	var got []string
	for name := range r.Shared[TypePod] {
		got = append(got, name)
	}
	want := map[string]bool{"a/db-0": true, "b/selected": true}
	if len(got) != len(want) {
		t.Fatalf("pods sent: %v, want %v (a/plain matches a selector of namespace b only)", got, want)
	}
	for _, n := range got {
		if !want[n] {
			t.Errorf("pod %s sent", n)
		}
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	bad := map[string][]byte{
		TypeService:             {0xff, 0xff},
		TypeServiceEntry:        mustMarshal(t, ServiceEntryPB(&model.ServiceEntry{})), // fine: no error expected below
		TypeScopedServiceEntry:  nil,                                                   // no service_entry
		"type.googleapis.com/x": nil,
	}
	for typeURL, b := range bad {
		_, err := Decode(typeURL, b)
		if (err == nil) != (typeURL == TypeServiceEntry) {
			t.Errorf("Decode(%s, %x): err %v", typeURL, b, err)
		}
	}
	svc := ServicePB(&model.Service{Meta: meta("a", "s", nil)})
	svc.ClusterIps = [][]byte{{1, 2, 3}}
	if _, err := Decode(TypeService, mustMarshal(t, svc)); err == nil {
		t.Error("a 3-byte address was accepted")
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNamesSortAsTheKubernetesSourceSorts: namespace first, then name, which is not the byte
// order of "namespace/name" ('-' sorts before '/').
func TestNamesSortAsTheKubernetesSourceSorts(t *testing.T) {
	names := []string{"a-b/x", "b", "a/z", "a/y", "a"}
	slices.SortFunc(names, CompareNames)
	want := []string{"a", "b", "a/y", "a/z", "a-b/x"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted %q, want %q", names, want)
	}
}

// TestSnapshotOfKeepsWhatDecodes: a resource that does not decode is reported and left out;
// the others are kept.
func TestSnapshotOfKeepsWhatDecodes(t *testing.T) {
	good := mustMarshal(t, ServicePB(&model.Service{Meta: meta("a", "kept", nil), Type: model.ServiceTypeClusterIP}))
	snap, err := SnapshotOf([]Encoded{{TypeService, []byte{0xff}}, {TypeService, good}})
	if err == nil || !strings.Contains(err.Error(), "Service") {
		t.Errorf("error %v, want one naming the type", err)
	}
	if len(snap.Services) != 1 || snap.Services[0].Name != "kept" {
		t.Errorf("services %+v, want the one that decodes", snap.Services)
	}
}
