package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/testutil/dnsmasq"
)

// explainCase is one question of the resolver's decision table, asked of examples/registry by
// a client of namespace bookinfo.
type explainCase struct {
	name, qname, qtype string
	dig                []string // more dig options: the class, +notcp
	cli                []string // the same for meshdns explain
	rule               string   // a rule some step must name
	origin             string   // an origin some step must name, if any
	upstream           bool     // records from upstream: their TTLs count down
}

// TestExplainMatchesDig: for every row of the decision table that examples/registry can
// produce, `meshdns explain -o json` gives the rcode and records dig gets for the same question
// from the same namespace, and names the rule and the object behind the records. A forwarded
// name is asked upstream (dnsmasq) the first time and found in the cache the second.
func TestExplainMatchesDig(t *testing.T) {
	need(t, "dig")
	up := dnsmasq.Start(t, upstreamArgs...)
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), up.String())})
	admin := strings.TrimPrefix(srv.adminURL, "http://")
	for _, tc := range []explainCase{
		{name: "table hit", qname: "reviews.bookinfo.svc.cluster.local.", qtype: "A", rule: resolver.RuleTableHit, origin: "Service bookinfo/reviews"},
		{name: "dual stack AAAA", qname: "reviews.bookinfo.svc.cluster.local.", qtype: "AAAA", rule: resolver.RuleTableHit, origin: "Service bookinfo/reviews"},
		{name: "headless", qname: "mysql.data.svc.cluster.local.", qtype: "A", rule: resolver.RuleTableHit, origin: "Service data/mysql"},
		{name: "ExternalName in the table", qname: "cache.data.svc.cluster.local.", qtype: "A", rule: resolver.RuleCNAME, origin: "Service data/redis"},
		{name: "ExternalName chased upstream", qname: "legacy-db.data.svc.cluster.local.", qtype: "A", rule: resolver.RuleCNAMEUpstream,
			origin: "Service data/legacy-db", upstream: true},
		{name: "short name svc", qname: "reviews.", qtype: "A", rule: resolver.RuleShortName, origin: "Service bookinfo/reviews"},
		{name: "short name svc.ns", qname: "mysql.data.", qtype: "A", rule: resolver.RuleShortName, origin: "Service data/mysql"},
		{name: "short name svc.ns.svc", qname: "mysql.data.svc.", qtype: "A", rule: resolver.RuleShortName, origin: "Service data/mysql"},
		{name: "endpoint short name", qname: "mysql-0.mysql.data.", qtype: "A", rule: resolver.RuleEndpointShortName, origin: "Service data/mysql endpoint"},
		{name: "wildcard", qname: "anything.internal.example.com.", qtype: "A", rule: resolver.RuleWildcard, origin: "ServiceEntry bookinfo/internal-wildcard"},
		{name: "pod name", qname: "10-244-1-11.bookinfo.pod.cluster.local.", qtype: "A", rule: resolver.RulePodName,
			origin: "pod name 10-244-1-11 in namespace bookinfo"},
		{name: "NODATA", qname: "ratings.bookinfo.svc.cluster.local.", qtype: "AAAA", rule: resolver.RuleNoData, origin: "Service bookinfo/ratings"},
		// Below the first search domain: autopath's walk asks upstream about "nope." first.
		{name: "NXDOMAIN", qname: "nope.bookinfo.svc.cluster.local.", qtype: "A", rule: resolver.RuleNXDomain, upstream: true},
		{name: "autopath from the table", qname: "mysql.data.bookinfo.svc.cluster.local.", qtype: "A", rule: resolver.RuleAutopath, origin: "Service data/mysql"},
		{name: "exportTo hid it", qname: "admin.vms.example.com.", qtype: "A", rule: resolver.RuleHidden,
			origin: "ServiceEntry vms/vm-admin", upstream: true},
		{name: "forwarded", qname: "www.example.com.", qtype: "A", rule: resolver.RuleUpstream, upstream: true},
		{name: "forwarded again: cache hit", qname: "www.example.com.", qtype: "A", rule: resolver.RuleCacheHit, upstream: true},
		{name: "AXFR refused", qname: "cluster.local.", qtype: "AXFR", dig: []string{"+notcp"}, rule: resolver.RuleRejected},
		{name: "CHAOS refused", qname: "version.bind.", qtype: "TXT", dig: []string{"-c", "CH"}, cli: []string{"--class", "CH"},
			rule: resolver.RuleRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := explain(t, admin, tc) // first: a forwarded name is not cached yet
			r := ask(t, digUDP, srv.dnsPort, tc.qname, tc.qtype, tc.dig...)
			if e.Rcode != r.status {
				t.Errorf("explain says %s, dig got %s", e.Rcode, r.status)
			}
			for _, s := range []struct {
				name     string
				got, dig []string
			}{{"answer", e.Answer, r.answer}, {"authority", e.Authority, r.authority}} {
				if got, want := sortedRRs(s.got, tc.upstream), sortedRRs(s.dig, tc.upstream); !slices.Equal(got, want) {
					t.Errorf("%s: explain %q, dig %q", s.name, got, want)
				}
			}
			checkSteps(t, tc, e)
		})
	}
}

// explain runs `meshdns explain -o json` for tc against the admin endpoint at admin.
func explain(t *testing.T, admin string, tc explainCase) resolver.Explanation {
	t.Helper()
	args := append([]string{"explain", tc.qname, "--type", tc.qtype, "--admin", admin, "-o", "json"}, tc.cli...)
	code, stdout, stderr := runMeshdns(t, args...)
	if code != 0 {
		t.Fatalf("meshdns %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	var e resolver.Explanation
	if err := json.Unmarshal([]byte(stdout), &e); err != nil {
		t.Fatalf("meshdns explain -o json: %v\n%s", err, stdout)
	}
	return e
}

func checkSteps(t *testing.T, tc explainCase, e resolver.Explanation) {
	t.Helper()
	if !slices.ContainsFunc(e.Steps, func(s resolver.Step) bool { return s.Rule == tc.rule }) {
		t.Errorf("no step names the rule %s: %+v", tc.rule, e.Steps)
	}
	if tc.origin != "" && !slices.ContainsFunc(e.Steps, func(s resolver.Step) bool { return s.Origin == tc.origin }) {
		t.Errorf("no step names the origin %q: %+v", tc.origin, e.Steps)
	}
	if e.Namespace != "bookinfo" || e.Upstream != tc.upstream {
		t.Errorf("namespace %q, upstream %v; want bookinfo, %v", e.Namespace, e.Upstream, tc.upstream)
	}
}

// TestTableCommand: `meshdns table` prints one line per name of the live table with the object
// behind it and its records; -o json is /debug/table itself.
func TestTableCommand(t *testing.T) {
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), "")})
	admin := strings.TrimPrefix(srv.adminURL, "http://")
	code, stdout, stderr := runMeshdns(t, "table", "--admin", admin)
	want := []string{"reviews.bookinfo.svc.cluster.local.", "Service bookinfo/reviews", "A 10.96.10.20", "AAAA fd00:10:96::20"}
	line := ""
	for l := range strings.SplitSeq(stdout, "\n") {
		if strings.HasPrefix(l, want[0]+" ") {
			line = l
		}
	}
	for _, w := range want {
		if code != 0 || !strings.Contains(line, w) {
			t.Errorf("meshdns table: exit %d, line %q lacks %q (stderr %q)", code, line, w, stderr)
		}
	}
	_, body := srv.get(t, "/debug/table?all=false")
	if code, stdout, _ := runMeshdns(t, "table", "--admin", admin, "-o", "json"); code != 0 || stdout != body {
		t.Errorf("meshdns table -o json: exit %d, output differs from /debug/table", code)
	}
}

// TestExplainAdminUnreachable: with nothing listening at --admin, explain and table exit 1
// with one line on standard error naming the address.
func TestExplainAdminUnreachable(t *testing.T) {
	for _, args := range [][]string{{"explain", "reviews.", "--admin", closedUpstream}, {"table", "--admin", closedUpstream}} {
		code, stdout, stderr := runMeshdns(t, args...)
		if code != 1 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "unreachable") ||
			!strings.Contains(stderr, closedUpstream) {
			t.Errorf("meshdns %s: exit %d, stdout %q, stderr %q; want 1 and one line", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}
