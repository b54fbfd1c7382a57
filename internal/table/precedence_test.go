package table

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/miekg/dns"
)

// permutations returns every order of s.
func permutations[T any](s []T) [][]T {
	if len(s) <= 1 {
		return [][]T{slices.Clone(s)}
	}
	var out [][]T
	for i := range s {
		rest := slices.Concat(s[:i], s[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]T{s[i]}, p...))
		}
	}
	return out
}

// TestServiceEntryPrecedenceIgnoresInputOrder: a host named by ServiceEntries of several
// namespaces is answered from the client's own namespace when visible to it, else from the
// oldest entry (creationTimestamp, then namespace/name), whatever order the entries come in.
func TestServiceEntryPrecedenceIgnoresInputOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	aged := func(e model.ServiceEntry, created time.Time) model.ServiceEntry {
		e.Created = created
		return e
	}
	entries := []model.ServiceEntry{
		aged(se("zeta", "old", []string{"db.example.com"}, "192.0.2.1"), t0),
		aged(se("beta", "b", []string{"db.example.com"}, "192.0.2.2"), t0.Add(time.Hour)),
		aged(se("alpha", "a", []string{"db.example.com"}, "192.0.2.3"), t0.Add(time.Hour)),
		aged(se("gamma", "private", []string{"db.example.com"}, "192.0.2.4", "."), t0.Add(-time.Hour)),
	}
	cases := []struct {
		name    string
		entries []model.ServiceEntry
		ns      string
		want    string
	}{
		{"own namespace first", entries, "beta", "192.0.2.2"},
		{"own namespace even if exported only there", entries, "gamma", "192.0.2.4"},
		{"else the oldest visible", entries, "other", "192.0.2.1"},
		{"unknown client: the oldest visible", entries, "", "192.0.2.1"},
		{"equal age: namespace order", entries[1:3], "other", "192.0.2.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, order := range permutations(tc.entries) {
				tb := build(t, model.Snapshot{ServiceEntries: order})
				if got := addrsOf(tb.Lookup("db.example.com.", tc.ns)); !slices.Equal(got, []string{tc.want}) {
					t.Errorf("order %v: got %v, want %s", names(order), got, tc.want)
				}
			}
		})
	}
}

func names(entries []model.ServiceEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Key())
	}
	return out
}

// TestVIPPTROwnerIgnoresInputOrder: when hosts of several namespaces hold one VIP (recorded in
// their status.addresses), its reverse name lists the oldest entry's host first and names
// that entry as its origin, whatever order the entries come in.
func TestVIPPTROwnerIgnoresInputOrder(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vipOf := func(ns, name, host string, created time.Time) model.ServiceEntry {
		e := se(ns, name, []string{host}, "")
		e.Resolution, e.Created = model.ResolutionDNS, created
		e.StatusAddresses = []model.HostAddress{{Host: host, Address: netip.MustParseAddr("240.240.0.9")}}
		return e
	}
	entries := []model.ServiceEntry{
		vipOf("b", "newer", "new.example.com", t0.Add(time.Minute)),
		vipOf("z", "older", "old.example.com", t0),
		vipOf("a", "same", "old.example.com", t0.Add(time.Hour)),
	}
	for _, order := range permutations(entries) {
		tb := build(t, model.Snapshot{ServiceEntries: order})
		m, ok := tb.Lookup("9.0.240.240.in-addr.arpa.", "")
		if !ok {
			t.Fatalf("order %v: no PTR", names(order))
		}
		var targets []string
		for _, rr := range m.Node.Records(dns.TypePTR) {
			targets = append(targets, rr.(*dns.PTR).Ptr)
		}
		if want := []string{"old.example.com.", "new.example.com."}; !slices.Equal(targets, want) ||
			m.Node.Origin() != "ServiceEntry z/older VIP" {
			t.Errorf("order %v: PTR %v from %q, want %v from ServiceEntry z/older", names(order), targets, m.Node.Origin(), want)
		}
	}
}

// TestDumpIgnoresInputOrder: /debug/table lists the variants of a name in precedence order.
func TestDumpIgnoresInputOrder(t *testing.T) {
	entries := []model.ServiceEntry{
		se("c", "x", []string{"db.example.com", "*.wild.example.com"}, "192.0.2.3"),
		se("a", "x", []string{"db.example.com", "*.wild.example.com"}, "192.0.2.1"),
		se("b", "x", []string{"db.example.com", "*.wild.example.com"}, "192.0.2.2"),
	}
	want := build(t, model.Snapshot{ServiceEntries: entries}).Dump()
	for _, order := range permutations(entries) {
		got := build(t, model.Snapshot{ServiceEntries: order}).Dump()
		if !slices.EqualFunc(got, want, func(x, y Entry) bool {
			return x.Name == y.Name && x.Origin == y.Origin && slices.Equal(x.Records, y.Records)
		}) {
			t.Errorf("order %v: dump differs", names(order))
		}
	}
}
