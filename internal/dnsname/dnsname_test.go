package dnsname

import (
	"strings"
	"testing"
)

func TestToFQDN(t *testing.T) {
	long := strings.Repeat("a", 63)
	tests := []struct {
		in   string
		want FQDN
		err  string
	}{
		{in: "Cluster.Local", want: "cluster.local."},
		{in: "cluster.local.", want: "cluster.local."},
		{in: ".", want: "."},
		{in: "a_b.example", want: "a_b.example."},
		{in: long + ".x", want: FQDN(long + ".x.")},
		{in: "", err: "empty name"},
		{in: "a..b", err: "empty label"},
		{in: long + "a.x", err: "longer than 63"},
		{in: strings.Repeat("a.", 127) + "ab", err: "longer than 253"},
		{in: "-a.example", err: "starts or ends"},
		{in: "a b.example", err: "only letters"},
		// Unicode case mapping must not apply: 'K' (Kelvin sign) is not 'k'.
		{in: "\u212a.example", err: "only letters"},
		{in: "caf\u00e9.example", err: "label \"caf\u00e9\" holds '\u00e9'"},
		{in: "*.example.com", err: "only letters"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ToFQDN(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ToFQDN(%q) = %q, %v; want error containing %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ToFQDN(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseHostWildcard(t *testing.T) {
	if h, err := ParseHost("*.Example.COM.", true); err != nil || h != "*.example.com" {
		t.Fatalf(`ParseHost("*.Example.COM.", true) = %q, %v`, h, err)
	}
	if _, err := ParseHost("*.", true); err == nil {
		t.Fatal(`ParseHost("*.", true) accepted a bare wildcard`)
	}
	if _, err := ParseHost("a.*.example.com", true); err == nil {
		t.Fatal("a wildcard label that is not the first was accepted")
	}
}

func TestParseDomain(t *testing.T) {
	for in, want := range map[string]string{
		"Corp.Example.":                      "corp.example",
		"-ok.example":                        "-ok.example", // no host-name rule on '-'
		"a-.b_c.-":                           "a-.b_c.-",
		".":                                  "",
		"":                                   "",
		"a..example":                         "",
		"bad!.example":                       "",
		"*.example":                          "",
		strings.Repeat("x", 64) + ".example": "",
	} {
		got, err := ParseDomain(in)
		if want == "" && err == nil || want != "" && (err != nil || got != want) {
			t.Errorf("ParseDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestLowerIsASCIIOnly(t *testing.T) {
	for in, want := range map[string]string{
		"ReViEwS.Prod.": "reviews.prod.",
		"already.lower": "already.lower",
		"\u212a.\u00c9": "\u212a.\u00c9", // RFC 4343: no folding outside ASCII
	} {
		if got := Lower(in); got != want {
			t.Errorf("Lower(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Lower("already.lower.") }); n != 0 {
		t.Errorf("Lower of a lower-case name allocated %v times", n)
	}
}

func TestEqualFold(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"Example.COM.", "example.com.", true},
		{"example.com.", "example.com", false},
		{"\u212a.", "k.", false},
		{"\u00c9.", "\u00e9.", false},
	}
	for _, tc := range tests {
		if got := EqualFold(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCanonicalAndHost(t *testing.T) {
	if got := Canonical("Api.Example.com"); got != "api.example.com." {
		t.Errorf("Canonical = %q", got)
	}
	if got := Canonical("api.example.com."); got != "api.example.com." {
		t.Errorf("Canonical of an FQDN = %q", got)
	}
	if got := Host("Api.Example.com."); got != "api.example.com" {
		t.Errorf("Host = %q", got)
	}
}

func TestInDomain(t *testing.T) {
	tests := []struct {
		name, domain string
		want         bool
	}{
		{"cluster.local.", "cluster.local.", true},
		{"a.svc.cluster.local.", "cluster.local.", true},
		{"xcluster.local.", "cluster.local.", false},
		{"local.", "cluster.local.", false},
		{"anything.", ".", true},
	}
	for _, tc := range tests {
		if got := InDomain(tc.name, tc.domain); got != tc.want {
			t.Errorf("InDomain(%q, %q) = %v, want %v", tc.name, tc.domain, got, tc.want)
		}
	}
	if !FQDN("cluster.local.").Contains("x.cluster.local.") {
		t.Error("FQDN.Contains disagrees with InDomain")
	}
}
