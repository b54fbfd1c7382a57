package table

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
	"github.com/meshdns/meshdns/internal/vip"
)

// TestVIPTarget checks that each VIP leads to its own host and ports: DNS hosts are named for
// upstream resolution, STATIC ones carry their endpoints, wildcards and spec addresses have
// no target.
func TestVIPTarget(t *testing.T) {
	lease := func(a string) vip.Lease { return vip.Lease{Addr: netip.MustParseAddr(a), Since: time.Unix(0, 0)} }
	orders := se("db", "orders", []string{"orders-db.corp.example.com"}, "")
	orders.Resolution, orders.Ports = model.ResolutionDNS, []model.Port{{Name: "mysql", Protocol: "TCP", Number: 3306}}
	static := se("db", "static", []string{"cache.example.com"}, "")
	static.Endpoints = []model.WorkloadEndpoint{{Address: "192.0.2.60"}}
	static.Ports = []model.Port{{Number: 6379}}
	wild := se("db", "wild", []string{"*.wild.example.com"}, "")
	wild.Resolution = model.ResolutionDynamicDNS
	fixed := se("db", "fixed", []string{"fixed.example.com"}, "192.0.2.9")
	o := opts
	o.VIPs = vip.Assignments{
		{Namespace: "db", Host: "orders-db.corp.example.com"}: {lease("240.240.0.1"), lease("2001:2::1")},
		{Namespace: "db", Host: "cache.example.com"}:          {lease("240.240.0.2")},
		{Namespace: "db", Host: "*.wild.example.com"}:         {lease("240.240.0.3")},
	}
	tb, err := Build(model.Snapshot{ServiceEntries: []model.ServiceEntry{orders, static, wild, fixed}}, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		vip  string
		want string // fmt of the target, "" for none
	}{
		{vip: "240.240.0.1", want: "orders-db.corp.example.com. [3306] false []"},
		{vip: "2001:2::1", want: "orders-db.corp.example.com. [3306] false []"},
		{vip: "::ffff:240.240.0.1", want: "orders-db.corp.example.com. [3306] false []"},
		{vip: "240.240.0.2", want: "cache.example.com. [6379] true [192.0.2.60]"},
		{vip: "240.240.0.3"},
		{vip: "192.0.2.9"},
		{vip: "240.240.0.4"},
	} {
		t.Run(tc.vip, func(t *testing.T) {
			v, ok := tb.VIPTarget(netip.MustParseAddr(tc.vip))
			got := ""
			if ok {
				got = fmt.Sprint(v.Host, " ", v.Ports, " ", v.Static, " ", v.Endpoints)
			}
			if got != tc.want {
				t.Errorf("VIPTarget(%s) = %q, want %q", tc.vip, got, tc.want)
			}
		})
	}
	if v, _ := tb.VIPTarget(netip.MustParseAddr("240.240.0.1")); !v.HasPort(3306) || v.HasPort(3307) {
		t.Errorf("ports of orders-db: %v", v.Ports)
	}
}
