package vip

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/testutil"
)

// t0 is where every test clock (testutil.NewClock) starts.
var t0 = testutil.ClockStart

// key parses "namespace/host".
func key(s string) Key {
	ns, host, _ := strings.Cut(s, "/")
	return Key{Namespace: ns, Host: host}
}

// claims returns a claim per "namespace/host", created one second apart in the given order.
func claims(keys ...string) []Claim {
	out := make([]Claim, len(keys))
	for i, s := range keys {
		out[i] = Claim{Key: key(s), Created: t0.Add(time.Duration(i) * time.Second)}
	}
	return out
}

func without(cs []Claim, keys ...string) []Claim {
	var out []Claim
next:
	for _, c := range cs {
		for _, k := range keys {
			if c.Key == key(k) {
				continue next
			}
		}
		out = append(out, c)
	}
	return out
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// newTest returns an allocator over the pools v4 and v6 ("" turns one off) on clk.
func newTest(t testing.TB, v4, v6 string, clk *testutil.Clock, mod ...func(*Options)) *Allocator {
	t.Helper()
	o := Options{Now: clk.Now}
	if v4 != "" {
		o.V4 = netip.MustParsePrefix(v4)
	}
	if v6 != "" {
		o.V6 = netip.MustParsePrefix(v6)
	}
	for _, m := range mod {
		m(&o)
	}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// logTo sends the allocator's logs to buf.
func logTo(buf *bytes.Buffer) func(*Options) {
	return func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// v4of returns k's IPv4 address, or the zero Addr.
func v4of(as Assignments, k string) netip.Addr { return familyAddr(as, k, IPv4) }
func v6of(as Assignments, k string) netip.Addr { return familyAddr(as, k, IPv6) }

func familyAddr(as Assignments, k string, f Family) netip.Addr {
	for _, l := range as[key(k)] {
		if familyOf(l.Addr) == f {
			return l.Addr
		}
	}
	return netip.Addr{}
}

// addrsOf maps each key to its IPv4 address, for comparing whole assignments.
func addrsOf(as Assignments) map[Key]netip.Addr {
	out := map[Key]netip.Addr{}
	for k, ls := range as {
		for _, l := range ls {
			if l.Addr.Is4() {
				out[k] = l.Addr
			}
		}
	}
	return out
}

// The pools meshdns uses by default (--vip-cidr, --vip-cidr6): the ranges Istio allocates
// from, reserved and never routed.
var (
	defaultV4 = netip.MustParsePrefix("240.240.0.0/16")
	defaultV6 = netip.MustParsePrefix("2001:2::/48")
)
