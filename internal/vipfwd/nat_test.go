package vipfwd

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshdns/meshdns/internal/testutil"
)

// TestNATAddDecides which forwarded connections make a kernel path entry: one per VIP and
// port while it lasts, none for an answer about to expire or across address families, and a
// new one once the last has expired. (Writing the entries is nft's part: TestVIPKernelPath.)
func TestNATAddDecides(t *testing.T) {
	n := &NAT{queue: make(chan natEntry, natQueue), until: map[netip.AddrPort]time.Time{}}
	vip := netip.MustParseAddrPort("240.240.0.1:3306")
	vip6 := netip.MustParseAddrPort("[2001:2::1]:3306")
	host := netip.MustParseAddrPort("192.0.2.10:3306")
	host6 := netip.MustParseAddrPort("[2001:db8::10]:3306")
	queued := func() []natEntry {
		var out []natEntry
		for {
			select {
			case e := <-n.queue:
				out = append(out, e)
			default:
				return out
			}
		}
	}

	n.Add(vip, host, 30*time.Second)
	n.Add(vip, host, 30*time.Second)                               // the entry exists
	n.Add(netip.AddrPortFrom(vip.Addr(), 5432), host, time.Minute) // another port: another entry
	n.Add(vip6, host, time.Minute)                                 // DNAT keeps the family
	n.Add(vip6, host6, time.Second)                                // about to expire
	n.Add(vip6, host6, 10*time.Second)
	got := queued()
	want := []natEntry{{vip, host, 30 * time.Second}, {netip.AddrPortFrom(vip.Addr(), 5432), host, time.Minute}, {vip6, host6, 10 * time.Second}}
	if len(got) != len(want) {
		t.Fatalf("queued %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %v, want %v", i, got[i], want[i])
		}
	}

	n.until[vip] = time.Now().Add(-time.Second) // expired
	n.Add(vip, netip.MustParseAddrPort("192.0.2.11:3306"), 30*time.Second)
	if got := queued(); len(got) != 1 || got[0].to.Addr().String() != "192.0.2.11" {
		t.Errorf("after expiry: queued %v, want the new address", got)
	}

	var nilNAT *NAT
	nilNAT.Add(vip, host, time.Minute) // without --vip-nat: nothing, no panic
}

// TestNATMetricsLint: the kernel path's metric follows Prometheus's naming rules, and each
// result has a series from the start.
func TestNATMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	newNATMetrics(reg)
	if mfs := testutil.LintMetrics(t, reg); len(mfs) != 1 || mfs[0].GetName() != "meshdns_vip_nat_entries_total" || len(mfs[0].GetMetric()) != 3 {
		t.Errorf("gathered %v, want meshdns_vip_nat_entries_total with 3 results", mfs)
	}
}
