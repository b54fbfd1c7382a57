package resolver_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
)

type explainCase struct {
	name   string
	qname  string
	qtype  uint16
	class  uint16 // 0: IN
	ns     string // "": prod
	rules  []string
	origin string // an Origin some step names, if any
	detail string // a Detail some step contains, if any
}

// TestExplainNamesTheRule: for each row of the decision table, Explain gives the response
// Query gives for the same question and names the rules that produced it, in order, and the
// object behind the records.
func TestExplainNamesTheRule(t *testing.T) {
	const (
		A, AAAA, CNAME = dns.TypeA, dns.TypeAAAA, dns.TypeCNAME
	)
	R := resolver.RuleRecords
	cases := []explainCase{
		{name: "table hit", qname: "reviews.prod.svc.cluster.local.", qtype: A,
			rules: []string{resolver.RuleTableHit, R}, origin: "Service prod/reviews"},
		{name: "dual stack AAAA", qname: "reviews.prod.svc.cluster.local.", qtype: AAAA,
			rules: []string{resolver.RuleTableHit, R}, origin: "Service prod/reviews"},
		{name: "headless", qname: "db.store.svc.cluster.local.", qtype: A,
			rules: []string{resolver.RuleTableHit, R}, origin: "Service store/db"},
		{name: "NODATA", qname: "ratings.prod.svc.cluster.local.", qtype: AAAA,
			rules: []string{resolver.RuleTableHit, resolver.RuleNoData}, origin: "Service prod/ratings"},
		{name: "ExternalName in the table", qname: "alias.prod.svc.cluster.local.", qtype: A,
			rules: []string{resolver.RuleTableHit, resolver.RuleCNAME, resolver.RuleTableHit, R}, origin: "Service prod/ratings"},
		{name: "ExternalName upstream", qname: "legacy.prod.svc.cluster.local.", qtype: A,
			rules:  []string{resolver.RuleTableHit, resolver.RuleCNAME, resolver.RuleCNAMEUpstream, resolver.RuleUpstream},
			origin: "Service prod/legacy"},
		{name: "ExternalName CNAME query", qname: "legacy.prod.svc.cluster.local.", qtype: CNAME,
			rules: []string{resolver.RuleTableHit, R}},
		{name: "ExternalName to a missing zone name", qname: "dangling.prod.svc.cluster.local.", qtype: A,
			rules: []string{resolver.RuleTableHit, resolver.RuleCNAME, resolver.RuleCNAMENXDomain}},
		{name: "short name svc.", qname: "reviews.", qtype: A,
			rules: []string{resolver.RuleShortName, R}, origin: "Service prod/reviews"},
		{name: "short name svc.ns.", ns: "store", qname: "reviews.prod.", qtype: A,
			rules: []string{resolver.RuleShortName, R}, origin: "Service prod/reviews"},
		{name: "endpoint short name", qname: "db-0.db.store.", qtype: A,
			rules: []string{resolver.RuleEndpointShortName, R}, origin: "Service store/db endpoint"},
		{name: "wildcard", qname: "a.b.wild.example.com.", qtype: AAAA,
			rules: []string{resolver.RuleWildcard, R}, origin: "ServiceEntry prod/wild"},
		{name: "pod name", qname: "10-244-1-7.prod.pod.cluster.local.", qtype: A,
			rules: []string{resolver.RulePodName, R}, origin: "pod name 10-244-1-7 in namespace prod"},
		{name: "NXDOMAIN in the zone", qname: "nope.store.svc.cluster.local.", qtype: A,
			rules: []string{resolver.RuleNXDomain}},
		{name: "autopath from the table", qname: "db.store.prod.svc.cluster.local.", qtype: A,
			rules: []string{resolver.RuleAutopath, R}, origin: "Service store/db",
			detail: "via search domain svc.cluster.local., from the table"},
		{name: "autopath from upstream", qname: "example.org.prod.svc.cluster.local.", qtype: A,
			rules:  []string{resolver.RuleUpstream, resolver.RuleAutopath},
			detail: "via the name as asked, from upstream"},
		{name: "exportTo hid it", qname: "private.example.com.", qtype: A,
			rules:  []string{resolver.RuleHidden, resolver.RuleForward, resolver.RuleUpstream},
			origin: "ServiceEntry vms/private", detail: "not visible to namespace prod"},
		{name: "exportTo shows it", ns: "vms", qname: "private.example.com.", qtype: A,
			rules: []string{resolver.RuleTableHit, R}, origin: "ServiceEntry vms/private"},
		{name: "forwarded", qname: "example.org.", qtype: A,
			rules: []string{resolver.RuleForward, resolver.RuleUpstream}},
		{name: "upstream failure", qname: "unreachable.example.org.", qtype: A,
			rules: []string{resolver.RuleForward, resolver.RuleUpstreamFailed}},
		{name: "AXFR refused", qname: "cluster.local.", qtype: dns.TypeAXFR,
			rules: []string{resolver.RuleRejected}, detail: "REFUSED"},
		{name: "CHAOS refused", qname: "version.bind.", qtype: dns.TypeTXT, class: dns.ClassCHAOS,
			rules: []string{resolver.RuleRejected}, detail: "CH"},
	}
	tb := loadTable(t, "testdata/registry.yaml")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, want := explainAndQuery(t, tb, tc)
			checkExplanation(t, tc, e, want)
		})
	}
}

// explainAndQuery explains tc and answers it with Query, each on a resolver of its own.
func explainAndQuery(t *testing.T, tb *table.Table, tc explainCase) (resolver.Explanation, *dns.Msg) {
	t.Helper()
	req := new(dns.Msg)
	req.SetQuestion(tc.qname, tc.qtype)
	if tc.class != 0 {
		req.Question[0].Qclass = tc.class
	}
	ns := tc.ns
	if ns == "" {
		ns = "prod"
	}
	c := resolver.Client{Namespace: ns, Search: search(ns)}
	var got [2]resolver.Reply
	var e resolver.Explanation
	for i := range got {
		res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: newUpstream()})
		res.SetTable(tb)
		if i == 0 {
			e = res.Explain(context.Background(), req, c)
		} else {
			got[i] = res.Query(context.Background(), req, c)
		}
		res.Close()
	}
	return e, got[1].Msg
}

func checkExplanation(t *testing.T, tc explainCase, e resolver.Explanation, want *dns.Msg) {
	t.Helper()
	var rules []string
	for _, s := range e.Steps {
		rules = append(rules, s.Rule)
	}
	if !slices.Equal(rules, tc.rules) {
		t.Errorf("rules %v, want %v (steps %+v)", rules, tc.rules, e.Steps)
	}
	if e.Rcode != dns.RcodeToString[want.Rcode] {
		t.Errorf("rcode %s, Query gives %s", e.Rcode, dns.RcodeToString[want.Rcode])
	}
	if a, b := sorted(e.Answer), sorted(rrTexts(want.Answer)); !slices.Equal(a, b) {
		t.Errorf("answer %q, Query gives %q", a, b)
	}
	if a, b := e.Authority, rrTexts(want.Ns); !slices.Equal(a, b) {
		t.Errorf("authority %q, Query gives %q", a, b)
	}
	if tc.origin != "" && !slices.ContainsFunc(e.Steps, func(s resolver.Step) bool { return s.Origin == tc.origin }) {
		t.Errorf("no step names the origin %q: %+v", tc.origin, e.Steps)
	}
	if tc.detail != "" && !slices.ContainsFunc(e.Steps, func(s resolver.Step) bool { return strings.Contains(s.Detail, tc.detail) }) {
		t.Errorf("no step says %q: %+v", tc.detail, e.Steps)
	}
}

func rrTexts(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

// TestExplainNotReady: before the first table and while a source is not ready, a zone name is
// explained as not ready.
func TestExplainNotReady(t *testing.T) {
	req := new(dns.Msg)
	req.SetQuestion("ghost.prod.svc.cluster.local.", dns.TypeA)
	res := resolver.New(resolver.Options{Zone: "cluster.local"})
	defer res.Close()
	if e := res.Explain(context.Background(), req, resolver.Client{}); len(e.Steps) != 1 ||
		e.Steps[0].Rule != resolver.RuleNotReady || e.Rcode != "SERVFAIL" {
		t.Errorf("no table: %+v", e)
	}
	res.SetTable(loadTableWith(t, "testdata/registry.yaml", table.Options{Partial: true}))
	if e := res.Explain(context.Background(), req, resolver.Client{}); len(e.Steps) != 1 ||
		e.Steps[0].Rule != resolver.RuleNotReady || !strings.Contains(e.Steps[0].Detail, "partial") {
		t.Errorf("partial table: %+v", e)
	}
}

// TestExplainCacheHit: a second explanation of a forwarded name comes from the cache, with the
// TTL it has left, and says it asked upstream (through the cache).
func TestExplainCacheHit(t *testing.T) {
	clk := testutil.NewClock()
	res := resolver.New(resolver.Options{Zone: "cluster.local", Forwarder: newUpstream(),
		Cache: cache.New(cache.Options{Now: clk.Now})})
	defer res.Close()
	res.SetTable(loadTable(t, "testdata/registry.yaml"))
	req := new(dns.Msg)
	req.SetQuestion("example.org.", dns.TypeA)
	c := resolver.Client{Namespace: "prod", Search: search("prod")}
	if e := res.Explain(context.Background(), req, c); e.Steps[1].Rule != resolver.RuleUpstream || !e.Upstream {
		t.Fatalf("first: %+v", e)
	}
	clk.Advance(20 * time.Second)
	e := res.Explain(context.Background(), req, c)
	if e.Steps[1].Rule != resolver.RuleCacheHit || e.Steps[1].Detail != "remaining TTL 40s" || e.Result != "cache-hit" {
		t.Errorf("second: %+v", e)
	}
}

// TestExplainVIPs: a ServiceEntry host answered with allocated VIPs names them and when they
// were leased.
func TestExplainVIPs(t *testing.T) {
	since := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tb := loadTableWith(t, "testdata/registry.yaml", table.Options{VIPs: vip.Assignments{
		{Namespace: "prod", Host: "orders.corp.example.net"}: {{Addr: netip.MustParseAddr("240.240.0.9"), Since: since}},
	}})
	e, want := explainAndQuery(t, tb, explainCase{qname: "orders.corp.example.net.", qtype: dns.TypeA})
	checkExplanation(t, explainCase{rules: []string{resolver.RuleTableHit, resolver.RuleRecords},
		origin: "ServiceEntry prod/allocated"}, e, want)
	if v := e.Steps[0].VIPs; len(v) != 1 || v[0].Addr.String() != "240.240.0.9" || !v[0].Since.Equal(since) {
		t.Errorf("VIPs %+v, want 240.240.0.9 since %v", v, since)
	}
}
