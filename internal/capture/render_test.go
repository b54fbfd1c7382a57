package capture

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the rendered rules")

// defaultSpec is the flags' defaults with nameservers ns.
func defaultSpec(ns ...string) Spec {
	s := Spec{ProxyPort: 15053, ProxyUID: 1337, ProxyGID: 1337}
	for _, a := range ns {
		s.Nameservers = append(s.Nameservers, netip.MustParseAddr(a))
	}
	return s
}

var renderCases = []struct {
	name string
	spec Spec
}{
	{"v4", defaultSpec("10.96.0.10")},
	{"v4v6", defaultSpec("10.96.0.10", "fd00:10:96::a")},
	{"all", Spec{ProxyPort: 15053, ProxyUID: 1337, ProxyGID: 1337, All: true}},
	{"custom", Spec{ProxyPort: 5300, ProxyUID: 2001, ProxyGID: 2002,
		Nameservers: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}}},
	{"vips", withVIPs(defaultSpec("10.96.0.10"))},
	{"node", nodeSpec},
	{"node4", Spec{Node: true, ClusterDNS: []netip.Addr{netip.MustParseAddr("10.96.0.10")}}},
}

// nodeSpec is capture install --node --cluster-dns 10.96.0.10,fd00:10:96::a.
var nodeSpec = Spec{Node: true, LocalIPs: DefaultLocalIPs,
	ClusterDNS: []netip.Addr{netip.MustParseAddr("10.96.0.10"), netip.MustParseAddr("fd00:10:96::a")}}

// withVIPs adds the default VIP pools and forward port (capture install --vips) to s.
func withVIPs(s Spec) Spec {
	s.VIPPools = []netip.Prefix{netip.MustParsePrefix("240.240.0.0/16"), netip.MustParsePrefix("2001:2::/48")}
	s.VIPPort = 15055
	return s
}

// TestRenderGolden compares the rendered rules of every backend and option combination with
// testdata/NAME_BACKEND.golden; go test -run TestRenderGolden -update rewrites them.
func TestRenderGolden(t *testing.T) {
	for _, tc := range renderCases {
		for _, b := range []Backend{IPTables, IPTablesLegacy, NFTables} {
			t.Run(tc.name+"/"+string(b), func(t *testing.T) {
				r, err := Build(tc.spec)
				if err != nil {
					t.Fatal(err)
				}
				rendered, err := r.Render(b)
				if err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", tc.name+"_"+string(b)+".golden"), rendered.String())
			})
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestRenderRoundTrip: the text Verify expects is the text the renderers write, so a parse of
// the rendered nft script gives back the chains it was made from.
func TestRenderRoundTrip(t *testing.T) {
	for _, tc := range renderCases {
		r, err := Build(tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		want := nftChains(r)
		for i := range want {
			want[i].header = normalizeHeader(want[i].header)
		}
		if d := diffNFT(want, parseNFT(renderNFT(r))); len(d) > 0 {
			t.Errorf("%s: %s", tc.name, strings.Join(d, "\n"))
		}
	}
}
