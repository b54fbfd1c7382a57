package table

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/meshdns/meshdns/internal/model"
)

// dumpSnapshot has a service (with aliases and an SRV record), a wildcard, a host exported to
// every namespace, one exported to its own namespace only and one exported to prod.
func dumpSnapshot() model.Snapshot {
	return model.Snapshot{
		Services: []model.Service{{Meta: model.Meta{Namespace: "prod", Name: "x"}, ClusterIPs: ips("10.0.0.1"),
			Ports: []model.Port{{Name: "http", Protocol: "TCP", Number: 80}}}},
		ServiceEntries: []model.ServiceEntry{
			se("vms", "public", []string{"public.example.com", "*.wild.example.com"}, "192.0.2.1"),
			se("vms", "private", []string{"private.example.com"}, "192.0.2.2", "."),
			se("vms", "to-prod", []string{"to-prod.example.com"}, "192.0.2.3", "prod"),
		},
	}
}

// TestWriteDumpIsDumpEncoded: the streamed dump is byte for byte what encoding/json's
// Encoder with a two-space indent makes of Dump's entries, the format /debug/table has always
// had, and an empty view is an empty list.
func TestWriteDumpIsDumpEncoded(t *testing.T) {
	tb := build(t, dumpSnapshot())
	var want, got bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tb.Dump()); err != nil {
		t.Fatal(err)
	}
	if err := tb.WriteDump(&got, View{All: true}); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("WriteDump:\n%s\nwant (Dump encoded):\n%s", got.String(), want.String())
	}
	got.Reset()
	if err := new(Table).WriteDump(&got, View{Namespace: "prod"}); err != nil || got.String() != "[]\n" {
		t.Errorf("WriteDump of an empty table = %q, %v; want []", got.String(), err)
	}
}

// TestDumpViewFollowsExportTo: the client's view lists the names the client can look up and
// none that exportTo hides from it; the view of all lists every name.
func TestDumpViewFollowsExportTo(t *testing.T) {
	tb := build(t, dumpSnapshot())
	for _, tc := range []struct {
		name   string
		view   View
		shown  []string
		hidden []string
	}{
		{"client in prod", View{Namespace: "prod"},
			[]string{"x.prod.svc.cluster.local.", "public.example.com.", "*.wild.example.com.", "to-prod.example.com."},
			[]string{"private.example.com."}},
		{"client in vms", View{Namespace: "vms"},
			[]string{"public.example.com.", "private.example.com."}, []string{"to-prod.example.com."}},
		{"client namespace unknown", View{},
			[]string{"x.prod.svc.cluster.local.", "public.example.com."}, []string{"private.example.com.", "to-prod.example.com."}},
		{"all", View{All: true, Namespace: "prod"},
			[]string{"public.example.com.", "private.example.com.", "to-prod.example.com."}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tb.WriteDump(&buf, tc.view); err != nil {
				t.Fatal(err)
			}
			var entries []Entry
			if err := json.Unmarshal(buf.Bytes(), &entries); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
			}
			for _, n := range tc.shown {
				if !slices.Contains(names, n) {
					t.Errorf("%s missing from %v", n, names)
				}
				if _, ok := tb.Lookup(n, tc.view.Namespace); !ok && !tc.view.All && n[0] != '*' {
					t.Errorf("%s shown, but Lookup does not find it for the client", n)
				}
			}
			for _, n := range tc.hidden {
				if slices.Contains(names, n) {
					t.Errorf("%s listed although exportTo hides it: %v", n, names)
				}
			}
		})
	}
}
