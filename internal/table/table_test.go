package table

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
)

var opts = Options{Zone: "Cluster.Local.", TTL: 30 * time.Second, Generation: 7}

func ips(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

func build(t *testing.T, s model.Snapshot) *Table {
	t.Helper()
	tb, err := Build(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func addrsOf(m Match, ok bool) []string {
	if !ok {
		return nil
	}
	var out []string
	for _, rr := range slices.Concat(m.Node.Records(dns.TypeA), m.Node.Records(dns.TypeAAAA)) {
		out = append(out, rrIP(rr).String())
	}
	slices.Sort(out)
	return out
}

func se(ns, name string, hosts []string, addr string, exportTo ...string) model.ServiceEntry {
	e := model.ServiceEntry{Meta: model.Meta{Namespace: ns, Name: name}, Hosts: hosts,
		Resolution: model.ResolutionStatic, ExportTo: exportTo}
	if addr != "" {
		e.Addresses = []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(addr), 32)}
	}
	return e
}

func TestBuildOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		err  string
	}{
		{"bad zone", Options{Zone: "bad..zone", TTL: time.Second}, "cluster domain"},
		{"root zone", Options{Zone: ".", TTL: time.Second}, "cluster domain"},
		{"zero ttl", Options{Zone: "cluster.local", TTL: 0}, "ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Build(model.Snapshot{}, tc.o); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err = %v, want one about %s", err, tc.err)
			}
		})
	}
}

func TestServiceEntryVariants(t *testing.T) {
	tb := build(t, model.Snapshot{ServiceEntries: []model.ServiceEntry{
		se("a", "one", []string{"db.example.com"}, "192.0.2.1"),
		se("a", "two", []string{"DB.example.com."}, "192.0.2.2"), // same namespace: merged
		se("b", "own", []string{"db.example.com"}, "192.0.2.3", "."),
		se("c", "public", []string{"db.example.com"}, "192.0.2.4", "*"),
	}})
	for _, tc := range []struct {
		ns   string
		want []string
	}{
		{"a", []string{"192.0.2.1", "192.0.2.2"}}, // own namespace first
		{"b", []string{"192.0.2.3"}},
		{"c", []string{"192.0.2.4"}},
		{"d", []string{"192.0.2.1", "192.0.2.2"}}, // first visible
		{"", []string{"192.0.2.1", "192.0.2.2"}},
	} {
		if got := addrsOf(tb.Lookup("db.example.com.", tc.ns)); !slices.Equal(got, tc.want) {
			t.Errorf("client in %q: got %v, want %v", tc.ns, got, tc.want)
		}
	}
}

func TestExportTo(t *testing.T) {
	tb := build(t, model.Snapshot{ServiceEntries: []model.ServiceEntry{
		se("vms", "x", []string{"x.example.com"}, "192.0.2.1", ".", "prod"),
	}})
	for ns, visible := range map[string]bool{"vms": true, "prod": true, "dev": false, "": false} {
		if _, ok := tb.Lookup("x.example.com.", ns); ok != visible {
			t.Errorf("client in %q: visible = %v, want %v", ns, ok, visible)
		}
	}
}

func TestPTRSharedAddress(t *testing.T) {
	tb := build(t, model.Snapshot{Services: []model.Service{
		{Meta: model.Meta{Namespace: "a", Name: "x"}, ClusterIPs: ips("10.0.0.1")},
		{Meta: model.Meta{Namespace: "b", Name: "y"}, ClusterIPs: ips("10.0.0.1")},
	}})
	m, ok := tb.Lookup("1.0.0.10.in-addr.arpa.", "")
	if !ok || len(m.Node.Records(dns.TypePTR)) != 2 {
		t.Fatalf("want two PTR records, got %v", m.Node)
	}
}

// TestImmutable: a new build never changes a published table.
func TestImmutable(t *testing.T) {
	snap := model.Snapshot{Services: []model.Service{
		{Meta: model.Meta{Namespace: "a", Name: "x"}, ClusterIPs: ips("10.0.0.1")}}}
	first := build(t, snap)
	before := first.Dump()
	snap.Services[0].ClusterIPs = ips("10.0.0.2")
	second := build(t, snap)
	if got := addrsOf(first.Lookup("x.a.svc.cluster.local.", "")); !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("first table changed: %v", got)
	}
	if got := addrsOf(second.Lookup("x.a.svc.cluster.local.", "")); !slices.Equal(got, []string{"10.0.0.2"}) {
		t.Errorf("second table: %v", got)
	}
	if after := first.Dump(); len(after) != len(before) {
		t.Errorf("first table's dump changed size: %d -> %d", len(before), len(after))
	}
}

func TestStructure(t *testing.T) {
	tb := build(t, model.Snapshot{
		Services:   []model.Service{{Meta: model.Meta{Namespace: "prod", Name: "x"}, ClusterIPs: ips("10.0.0.1")}},
		Namespaces: []model.Namespace{{Name: "empty"}},
	})
	for _, name := range []string{"cluster.local.", "svc.cluster.local.", "prod.svc.cluster.local.",
		"empty.svc.cluster.local.", "pod.cluster.local.", "empty.pod.cluster.local."} {
		if _, ok := tb.Lookup(name, ""); !ok {
			t.Errorf("%s missing: would be NXDOMAIN instead of NODATA", name)
		}
	}
	if _, ok := tb.Lookup("nope.svc.cluster.local.", ""); ok {
		t.Errorf("a namespace that does not exist is present")
	}
	apex, _ := tb.Lookup("cluster.local.", "")
	if soa := apex.Node.Records(dns.TypeSOA); len(soa) != 1 || soa[0].(*dns.SOA).Serial != 7 {
		t.Errorf("apex SOA = %v, want serial 7 (the generation)", soa)
	}
}

func TestDump(t *testing.T) {
	tb := build(t, model.Snapshot{Services: []model.Service{
		{Meta: model.Meta{Namespace: "prod", Name: "x"}, ClusterIPs: ips("10.0.0.1"),
			Ports: []model.Port{{Name: "http", Protocol: "TCP", Number: 80}}}}})
	var found *Entry
	entries := tb.Dump()
	for i := range entries {
		if entries[i].Name == "x.prod.svc.cluster.local." {
			found = &entries[i]
		}
	}
	if found == nil {
		t.Fatal("service missing from dump")
	}
	// A and SRV; the SRV's Additional A record belongs to the target, not listed again.
	if found.Origin != "Service prod/x" || len(found.Records) != 2 ||
		!strings.Contains(found.Records[0], "10.0.0.1") || !slices.Contains(found.Aliases, "x.prod.") {
		t.Errorf("entry = %+v", *found)
	}
	if !slices.IsSortedFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) }) {
		t.Errorf("dump not sorted")
	}
}

func TestParseDashedIP(t *testing.T) {
	for in, want := range map[string]string{
		"10-1-2-3": "10.1.2.3", "fd00--1": "fd00::1", "2001-db8-0-0-0-0-0-1": "2001:db8::1",
		"10-1-2": "", "10-1-2-300": "", "a-b-c-d": "", "": "", "--": "::", "1-2-3-4-5": "",
	} {
		ip, ok := parseDashedIP(in)
		if got := ""; ok {
			got = ip.String()
			if got != want {
				t.Errorf("%q -> %q, want %q", in, got, want)
			}
		} else if want != "" {
			t.Errorf("%q rejected, want %q", in, want)
		}
	}
}

func TestVIPs(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	lease := func(a string) vip.Lease { return vip.Lease{Addr: netip.MustParseAddr(a), Since: since} }
	static := se("db", "static", []string{"cache.example.com"}, "")
	static.Endpoints = []model.WorkloadEndpoint{{Address: "192.0.2.60"}}
	status := se("db", "status", []string{"old.example.com"}, "")
	status.StatusAddresses = []model.HostAddress{{Host: "old.example.com", Address: netip.MustParseAddr("240.240.9.9")}}
	o := opts
	o.VIPs = vip.Assignments{
		{Namespace: "db", Host: "cache.example.com"}: {lease("240.240.0.7"), lease("2001:2::7")},
		{Namespace: "db", Host: "old.example.com"}:   {lease("240.240.0.8")},
	}
	tb, err := Build(model.Snapshot{ServiceEntries: []model.ServiceEntry{static, status}}, o)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"cache.example.com.": {"2001:2::7", "240.240.0.7"}, // the VIPs, not the static endpoint
		"old.example.com.":   {"240.240.0.8"},              // the allocator's lease over status
	} {
		if got := addrsOf(tb.Lookup(name, "db")); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	m, ok := tb.Lookup("7.0.240.240.in-addr.arpa.", "")
	if !ok || len(m.Node.Records(dns.TypePTR)) != 1 || m.Node.Records(dns.TypePTR)[0].(*dns.PTR).Ptr != "cache.example.com." {
		t.Errorf("PTR of a VIP: %v", m.Node)
	}
	for _, e := range tb.Dump() {
		if e.Name == "cache.example.com." && (len(e.VIPs) != 2 || !e.VIPs[0].Since.Equal(since)) {
			t.Errorf("dump of a VIP host: %+v", e)
		}
	}
}

func TestReverseName(t *testing.T) {
	for _, s := range []string{"10.96.0.1", "0.0.0.0", "255.255.255.255", "192.0.2.5", "::ffff:10.1.2.3",
		"fd00::12", "2001:db8::abcd:ef01", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"} {
		want, err := dns.ReverseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := reverseName(netip.MustParseAddr(s)); got != want {
			t.Errorf("reverseName(%s) = %q, want %q", s, got, want)
		}
	}
}

func TestDashed(t *testing.T) {
	for ip, want := range map[string]string{"10.1.2.3": "10-1-2-3", "fd00::1": "fd00--1", "::ffff:10.1.2.3": "--ffff-10-1-2-3"} {
		if got := dashed(netip.MustParseAddr(ip)); got != want {
			t.Errorf("dashed(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestNoPodRecords(t *testing.T) {
	snap := model.Snapshot{Namespaces: []model.Namespace{{Name: "prod"}}}
	const name = "10-1-2-3.prod.pod.cluster.local."
	if got := addrsOf(build(t, snap).Lookup(name, "")); !slices.Equal(got, []string{"10.1.2.3"}) {
		t.Errorf("pod name answered %v, want 10.1.2.3", got)
	}
	o := opts
	o.NoPodRecords = true
	tb, err := Build(snap, o)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := tb.Lookup(name, ""); ok {
		t.Errorf("pod name answered %v with pod records off", m.Node)
	}
}

// TestStatusFirst: with StatusFirst a host answers its status address over a different lease
// of the same family, unless another host holds that address here; families without a status
// address keep the lease.
func TestStatusFirst(t *testing.T) {
	lease := func(a string) vip.Lease { return vip.Lease{Addr: netip.MustParseAddr(a)} }
	withStatus := func(name, host, addr string) model.ServiceEntry {
		e := se("db", name, []string{host}, "")
		e.StatusAddresses = []model.HostAddress{{Host: host, Address: netip.MustParseAddr(addr)}}
		return e
	}
	snap := model.Snapshot{ServiceEntries: []model.ServiceEntry{
		withStatus("a", "a.example.com", "240.240.9.9"),  // status differs from the lease
		withStatus("b", "b.example.com", "240.240.0.30"), // status points at c's lease
		se("db", "c", []string{"c.example.com"}, ""),
	}}
	o := opts
	o.VIPs = vip.Assignments{
		{Namespace: "db", Host: "a.example.com"}: {lease("240.240.0.10"), lease("2001:2::10")},
		{Namespace: "db", Host: "b.example.com"}: {lease("240.240.0.20")},
		{Namespace: "db", Host: "c.example.com"}: {lease("240.240.0.30")},
	}
	for _, tc := range []struct {
		statusFirst bool
		want        map[string][]string
	}{
		{false, map[string][]string{"a.example.com.": {"2001:2::10", "240.240.0.10"}, "b.example.com.": {"240.240.0.20"}}},
		{true, map[string][]string{"a.example.com.": {"2001:2::10", "240.240.9.9"}, "b.example.com.": {"240.240.0.20"}}},
	} {
		o.StatusFirst = tc.statusFirst
		tb, err := Build(snap, o)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range tc.want {
			if got := addrsOf(tb.Lookup(name, "db")); !slices.Equal(got, want) {
				t.Errorf("StatusFirst=%v: %s answers %v, want %v", tc.statusFirst, name, got, want)
			}
		}
	}
}

// TestWorkloadSelection: a STATIC or NONE ServiceEntry without addresses answers its inline
// endpoints, then the WorkloadEntries, then the pods of its namespace that its selector
// matches, each in snapshot order (a WorkloadEntry's labels count from metadata and spec).
func TestWorkloadSelection(t *testing.T) {
	we := func(ns, name, addr string, meta, spec map[string]string) model.WorkloadEntry {
		return model.WorkloadEntry{Meta: model.Meta{Namespace: ns, Name: name, Labels: meta},
			WorkloadEndpoint: model.WorkloadEndpoint{Address: addr, Labels: spec}}
	}
	pod := func(ns, name string, labels map[string]string, addrs ...string) model.Pod {
		return model.Pod{Meta: model.Meta{Namespace: ns, Name: name, Labels: labels}, IPs: ips(addrs...)}
	}
	app := map[string]string{"app": "db"}
	both := map[string]string{"app": "db", "tier": "data"}
	selected := se("vms", "db", []string{"db.example.com"}, "")
	selected.Endpoints = []model.WorkloadEndpoint{{Address: "192.0.2.1"}, {Address: "db-0.example.com"}}
	selected.WorkloadSelector = both
	dnsResolved := se("vms", "dns", []string{"dns.example.com"}, "")
	dnsResolved.Resolution = model.ResolutionDNS
	dnsResolved.WorkloadSelector = app
	none := se("vms", "none", []string{"none.example.com"}, "")
	none.Resolution = model.ResolutionNone
	none.WorkloadSelector = app
	snap := model.Snapshot{
		ServiceEntries: []model.ServiceEntry{selected, dnsResolved, none},
		WorkloadEntries: []model.WorkloadEntry{
			we("vms", "split", "192.0.2.13", map[string]string{"app": "db"}, map[string]string{"tier": "data"}),
			we("vms", "other-ns-label", "192.0.2.99", map[string]string{"app": "web"}, app),
			we("other", "elsewhere", "192.0.2.98", both, nil),
			we("vms", "spec", "192.0.2.11", nil, both),
			we("vms", "not-an-ip", "vm.example.com", both, nil),
			we("vms", "partial", "192.0.2.97", app, nil),
		},
		Pods: []model.Pod{
			pod("vms", "p2", both, "10.0.0.2", "fd00::2"),
			pod("other", "p9", both, "10.0.0.9"),
			pod("vms", "p1", both, "10.0.0.1"),
			pod("vms", "p8", map[string]string{"app": "db", "tier": "web"}, "10.0.0.8"),
		},
	}
	tb := build(t, snap)
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"db.example.com.", []string{"192.0.2.1", "192.0.2.13", "192.0.2.11", "10.0.0.2", "10.0.0.1", "fd00::2"}},
		{"dns.example.com.", nil},
		{"none.example.com.", []string{"192.0.2.13", "192.0.2.99", "192.0.2.11", "192.0.2.97", "10.0.0.2", "10.0.0.1", "10.0.0.8", "fd00::2"}},
	} {
		var got []string
		if m, ok := tb.Lookup(tc.name, "vms"); ok {
			for _, rr := range slices.Concat(m.Node.Records(dns.TypeA), m.Node.Records(dns.TypeAAAA)) {
				got = append(got, rrIP(rr).String())
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestNamesFoldASCIIOnly: names from the model are lower-cased as DNS does (RFC 4343), so a
// non-ASCII letter is not folded into an ASCII one: the Kelvin sign is not 'k'.
func TestNamesFoldASCIIOnly(t *testing.T) {
	kelvin := se("b", "kelvin", []string{"\u212a8s.example.com"}, "192.0.2.1")
	k8s := se("a", "k8s", []string{"K8S.Example.COM."}, "")
	k8s.StatusAddresses = []model.HostAddress{
		{Host: "k8s.example.com", Address: netip.MustParseAddr("240.240.0.2")},
		{Host: "\u212a8s.example.com", Address: netip.MustParseAddr("240.240.0.3")},
	}
	k8s.Ports = []model.Port{{Name: "HTTP", Protocol: "TCP", Number: 80}}
	ext := model.Service{Meta: model.Meta{Namespace: "a", Name: "Ext"}, Type: model.ServiceTypeExternalName,
		ExternalName: "Mail.Example.COM"}
	tb := build(t, model.Snapshot{ServiceEntries: []model.ServiceEntry{kelvin, k8s}, Services: []model.Service{ext}})
	if m, ok := tb.Lookup("k8s.example.com.", "b"); !ok || m.Node.Origin() != "ServiceEntry a/k8s" {
		t.Errorf("k8s.example.com. for a client in b: %v, want ServiceEntry a/k8s, not the Kelvin sign's host", m.Node)
	}
	if got := addrsOf(tb.Lookup("k8s.example.com.", "a")); !slices.Equal(got, []string{"240.240.0.2"}) {
		t.Errorf("k8s.example.com.: %v, want its own status address only", got)
	}
	if _, ok := tb.Lookup("_http._tcp.k8s.example.com.", "a"); !ok {
		t.Error("the named port's SRV name is not lower-cased")
	}
	m, ok := tb.Lookup("ext.a.svc.cluster.local.", "a")
	if target, _ := m.Node.Target(); !ok || target != "mail.example.com." {
		t.Errorf("ExternalName target = %q, want mail.example.com.", target)
	}
}
