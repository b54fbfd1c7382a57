package vip

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/model"
)

// se returns a DNS-resolved ServiceEntry shop/name for hosts, created at t0; mod adjusts it.
func se(name string, hosts []string, mod ...func(*model.ServiceEntry)) model.ServiceEntry {
	s := model.ServiceEntry{
		Meta:       model.Meta{Namespace: "shop", Name: name, Created: t0},
		Hosts:      hosts,
		Resolution: model.ResolutionDNS,
		Ports:      []model.Port{{Name: "mysql", Protocol: "TCP", Number: 3306}},
	}
	for _, m := range mod {
		m(&s)
	}
	return s
}

func resolution(r model.Resolution) func(*model.ServiceEntry) {
	return func(s *model.ServiceEntry) { s.Resolution = r }
}

func TestClaimsEligibility(t *testing.T) {
	tests := []struct {
		name string
		ses  []model.ServiceEntry
		want []string // keys
	}{
		{name: "DNS host without addresses", ses: []model.ServiceEntry{se("db", []string{"db.example.com"})},
			want: []string{"shop/db.example.com"}},
		{name: "STATIC, DNS_ROUND_ROBIN and DYNAMIC_DNS are eligible", ses: []model.ServiceEntry{
			se("s", []string{"s.example.com"}, resolution(model.ResolutionStatic)),
			se("r", []string{"r.example.com"}, resolution(model.ResolutionDNSRoundRobin)),
			se("d", []string{"d.example.com"}, resolution(model.ResolutionDynamicDNS))},
			want: []string{"shop/d.example.com", "shop/r.example.com", "shop/s.example.com"}},
		{name: "resolution NONE is not", ses: []model.ServiceEntry{
			se("n", []string{"n.example.com"}, resolution(model.ResolutionNone))}},
		{name: "unset resolution means NONE", ses: []model.ServiceEntry{
			se("n", []string{"n.example.com"}, resolution(""))}},
		{name: "spec.addresses present", ses: []model.ServiceEntry{
			se("a", []string{"a.example.com"}, func(s *model.ServiceEntry) {
				s.Addresses = []netip.Prefix{netip.MustParsePrefix("192.0.2.10/32")}
			})}},
		{name: "spec.addresses with a CIDR only", ses: []model.ServiceEntry{
			se("a", []string{"a.example.com"}, func(s *model.ServiceEntry) {
				s.Addresses = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
			})}},
		{name: "wildcard with DNS is not", ses: []model.ServiceEntry{se("w", []string{"*.example.com"})}},
		{name: "wildcard with DYNAMIC_DNS is", ses: []model.ServiceEntry{
			se("w", []string{"*.example.com", "x.example.com"}, resolution(model.ResolutionDynamicDNS))},
			want: []string{"shop/*.example.com", "shop/x.example.com"}},
		{name: "a bare * never", ses: []model.ServiceEntry{
			se("w", []string{"*"}, resolution(model.ResolutionDynamicDNS))}},
		{name: "opted out by label", ses: []model.ServiceEntry{
			se("o", []string{"o.example.com"}, func(s *model.ServiceEntry) {
				s.Labels = map[string]string{OptOutLabel: "false"}
			})}},
		{name: "label true keeps it", ses: []model.ServiceEntry{
			se("o", []string{"o.example.com"}, func(s *model.ServiceEntry) {
				s.Labels = map[string]string{OptOutLabel: "true"}
			})},
			want: []string{"shop/o.example.com"}},
		{name: "hosts are normalised", ses: []model.ServiceEntry{se("db", []string{"DB.Example.COM."})},
			want: []string{"shop/db.example.com"}},
		{name: "one claim per namespace and host", ses: []model.ServiceEntry{
			se("b", []string{"db.example.com", "other.example.com"}),
			se("a", []string{"db.example.com"}),
			se("c", []string{"db.example.com"}, func(s *model.ServiceEntry) { s.Namespace = "dev" })},
			want: []string{"dev/db.example.com", "shop/db.example.com", "shop/other.example.com"}},
		{name: "eligible in one entry, not in another", ses: []model.ServiceEntry{
			se("none", []string{"db.example.com"}, resolution(model.ResolutionNone)),
			se("dns", []string{"db.example.com"})},
			want: []string{"shop/db.example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range Claims(model.Snapshot{ServiceEntries: tc.ses}) {
				got = append(got, c.Key.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("claims = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestClaimsMergeEntriesOfOneHost(t *testing.T) {
	status := func(pairs ...string) func(*model.ServiceEntry) {
		return func(s *model.ServiceEntry) {
			for i := 0; i < len(pairs); i += 2 {
				s.StatusAddresses = append(s.StatusAddresses,
					model.HostAddress{Host: pairs[i], Address: netip.MustParseAddr(pairs[i+1])})
			}
		}
	}
	created := func(d time.Duration) func(*model.ServiceEntry) {
		return func(s *model.ServiceEntry) { s.Created = t0.Add(d) }
	}
	ses := []model.ServiceEntry{
		se("newer", []string{"db.example.com"}, created(time.Hour),
			status("db.example.com", "240.240.0.9", "db.example.com", "2001:2::9")),
		se("older", []string{"db.example.com", "cache.example.com"}, created(0),
			status("DB.example.com.", "240.240.0.5", "cache.example.com", "240.240.0.6",
				"db.example.com", "::ffff:240.240.0.9")),
	}
	got := Claims(model.Snapshot{ServiceEntries: ses})
	want := []Claim{
		{Key: key("shop/cache.example.com"), Created: t0, Existing: []netip.Addr{addr("240.240.0.6")}},
		{Key: key("shop/db.example.com"), Created: t0,
			Existing: []netip.Addr{addr("240.240.0.5"), addr("240.240.0.9"), addr("2001:2::9")}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("claims =\n%+v\nwant\n%+v", got, want)
	}
	// The input order does not matter.
	ses[0], ses[1] = ses[1], ses[0]
	if again := Claims(model.Snapshot{ServiceEntries: ses}); !reflect.DeepEqual(again, want) {
		t.Errorf("reordered input: claims =\n%+v", again)
	}
}
