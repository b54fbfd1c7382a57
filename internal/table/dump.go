package table

import (
	"bufio"
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"strings"

	"github.com/meshdns/meshdns/internal/vip"
)

// Entry is one name of the table as /debug/table shows it.
type Entry struct {
	Name     string      `json:"name"`
	Origin   string      `json:"origin,omitempty"`
	ExportTo []string    `json:"exportTo,omitempty"`
	Aliases  []string    `json:"aliases,omitempty"`
	Records  []string    `json:"records"`
	VIPs     []vip.Lease `json:"vips,omitempty"`
}

// View selects the names a dump shows: every name (All), or those a client in Namespace sees
// (exportTo applied as Lookup applies it; an empty Namespace is a client whose namespace is
// unknown, who sees the names exported to every namespace).
type View struct {
	All       bool
	Namespace string
}

func (v View) shows(n *Node) bool { return v.All || n.Visible(v.Namespace) }

// Dump lists every name with its records in presentation format, sorted by name.
func (t *Table) Dump() []Entry {
	var out []Entry
	t.eachEntry(View{All: true}, func(e *Entry) error {
		out = append(out, *e)
		return nil
	})
	return out
}

// WriteDump writes the names of v to w as the JSON list Dump's entries encode to with
// encoding/json's Encoder and a two-space indent, one entry at a time: a table of any size is
// never held in memory a second time as entries or as one encoded value.
func (t *Table) WriteDump(w io.Writer, v View) error {
	bw := bufio.NewWriter(w)
	const first = "[\n  "
	sep := first
	err := t.eachEntry(v, func(e *Entry) error {
		b, err := json.MarshalIndent(e, "  ", "  ")
		if err != nil {
			return err
		}
		bw.WriteString(sep)
		sep = ",\n  "
		_, err = bw.Write(b)
		return err
	})
	if err != nil {
		return err
	}
	if sep == first {
		bw.WriteString("[]\n")
	} else {
		bw.WriteString("\n]\n")
	}
	return bw.Flush()
}

// dumpName is a name of the table with its variants, one per object that defines it.
type dumpName struct {
	name  string
	first *Node
}

// eachEntry calls f with the entries of v, sorted by name (the variants of a name in table
// order), until f fails.
func (t *Table) eachEntry(v View, f func(*Entry) error) error {
	names := make([]dumpName, 0, t.Len())
	for name, nodes := range t.names {
		if p := t.portNode(name, nodes); p != nil {
			nodes = p
		}
		names = append(names, dumpName{name, nodes})
		if svc := t.portOwner(name); svc != nil {
			eachPortName(svc, func(label string) {
				if pn := label + "." + name; t.names[pn] == nil {
					names = append(names, dumpName{pn, t.portNode(pn, nil)})
				}
			})
		}
	}
	for i := 0; i < len(t.reverse); {
		ptrs := t.ptrsOf(t.reverse[i].ip)
		rev := reverseName(ptrs[0].ip)
		names = append(names, dumpName{rev, t.ptrNode(rev, ptrs)})
		i += len(ptrs)
	}
	for name, nodes := range t.wildcards {
		names = append(names, dumpName{"*." + name, nodes})
	}
	slices.SortStableFunc(names, func(a, b dumpName) int { return cmp.Compare(a.name, b.name) })
	for _, dn := range names {
		aliases := serviceAliases(dn.first)
		for n := dn.first; n != nil; n = n.next {
			if !v.shows(n) {
				continue
			}
			e := Entry{Name: dn.name, Origin: n.Origin(), ExportTo: n.ExportTo(), Records: []string{},
				Aliases: slices.Concat(aliases, endpointAliases(n)), VIPs: n.VIPs()}
			slices.Sort(e.Aliases)
			for _, rr := range n.owned() {
				e.Records = append(e.Records, rr.String())
			}
			if err := f(&e); err != nil {
				return err
			}
		}
	}
	return nil
}

// serviceAliases lists the short names of a cluster service's name (every variant of it
// answers them), for Dump.
func serviceAliases(first *Node) []string {
	if !isService(first) {
		return nil
	}
	name, rest, _ := strings.Cut(first.Name, ".")
	ns, _, _ := strings.Cut(rest, ".")
	return shortNames(name+".", ns)
}

// endpointAliases lists the short names of an endpoint's node, for Dump.
func endpointAliases(n *Node) []string {
	if !n.Endpoint {
		return nil
	}
	ep, rest, _ := strings.Cut(n.Name, ".")
	svc, rest, _ := strings.Cut(rest, ".")
	ns, _, _ := strings.Cut(rest, ".")
	return shortNames(ep+"."+svc+".", ns)
}

// shortNames lists the forms of a short name ("svc." or "ep.svc.") of namespace ns that the
// table answers (Table.alias).
func shortNames(short, ns string) []string {
	return []string{short + ns + ".", short + ns + ".svc.", short + " (namespace " + ns + ")"}
}
