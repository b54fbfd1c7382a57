package resolver

import (
	"context"
	"fmt"
	"time"

	"github.com/meshdns/meshdns/internal/table"
	"github.com/meshdns/meshdns/internal/vip"
	"github.com/miekg/dns"
)

// Rules a Step names: the rows of docs/records.md's Answer rules and the ways a table name is
// found. They are the vocabulary of /debug/explain and `meshdns explain`.
const (
	RuleRejected          = "rejected"            // rules 4-6c: refused before any lookup
	RuleLocal             = "chaos-identity"      // rule 6c: version.bind and the like
	RuleNotReady          = "not-ready"           // rule 7: no table, or a partial one
	RuleTableHit          = "table-hit"           // rule 8: the name itself is in the table
	RuleShortName         = "short-name"          // svc., svc.ns., svc.ns.svc. -> CNAME to the FQDN
	RuleEndpointShortName = "endpoint-short-name" // ep.svc., ep.svc.ns., ... -> CNAME to the FQDN
	RuleWildcard          = "wildcard"            // a ServiceEntry host *.domain
	RulePodName           = "pod-name"            // a-b-c-d.ns.pod.<zone>
	RuleCNAME             = "cname"               // a CNAME of the table followed (ExternalName)
	RuleCNAMEUpstream     = "cname-upstream"      // a CNAME target outside the table asked upstream
	RuleCNAMENXDomain     = "cname-nxdomain"      // a CNAME target in the zone the table does not know
	RuleCNAMELoop         = "cname-chain-too-long"
	RuleRecords           = "records" // the node's records of the asked type
	RuleNoData            = "nodata"  // the node has none: NODATA with the SOA
	RuleAutopath          = "autopath"
	RuleHidden            = "exportto-hidden" // the name is in the table, exported away from the client
	RuleNXDomain          = "nxdomain"        // rule 10
	RuleForward           = "forward"         // rule 11, or rule 10 with unknown cluster names forwarded
	RuleUpstream          = "upstream"        // upstream asked (the cache missed or is off)
	RuleCacheHit          = "cache-hit"
	RuleCacheStale        = "cache-stale"
	RuleUpstreamFailed    = "upstream-failed"
)

// Step is one rule an answer went through, in order.
type Step struct {
	Rule string `json:"rule"`
	// Name is the name the step is about (a lowercase FQDN).
	Name string `json:"name,omitempty"`
	// Origin is the object whose records answered, e.g. "Service prod/reviews".
	Origin string `json:"origin,omitempty"`
	// VIPs are the node's allocated addresses and when they were leased.
	VIPs []vip.Lease `json:"vips,omitempty"`
	// Detail says more: the search domain of an autopath step, an rcode, a remaining TTL.
	Detail string `json:"detail,omitempty"`
}

// Explanation is the answer to one question and the rules that produced it.
type Explanation struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Namespace string   `json:"namespace"`
	Search    []string `json:"search"`
	Steps     []Step   `json:"steps"`
	// Result labels the answer as the queries metric does (table, autopath, upstream, ...).
	Result string `json:"result"`
	// Upstream says the explanation asked upstream (through the cache, as a query would).
	Upstream  bool     `json:"upstream"`
	Rcode     string   `json:"rcode"`
	Answer    []string `json:"answer"`
	Authority []string `json:"authority"`
	Extra     []string `json:"extra"`
}

// trace collects the steps of one explained question; a nil trace (every DNS query) records
// nothing, so the answering code pays one nil check per step.
type trace struct {
	steps    []Step
	upstream bool
}

func (t *trace) add(rule, name, detail string) {
	if t != nil {
		t.steps = append(t.steps, Step{Rule: rule, Name: name, Detail: detail})
	}
}

// node records a step about a table node: the object behind it.
func (t *trace) node(rule, name string, n *table.Node) {
	if t != nil {
		t.steps = append(t.steps, Step{Rule: rule, Name: name, Origin: n.Origin()})
	}
}

// autopath records the step of the walk that answered: the search domain (search[i], or the
// name as asked past the list) and whether the table or upstream had the name.
func (t *trace) autopath(name string, search []string, i int, from string) {
	if t == nil {
		return
	}
	via := "the name as asked"
	if i < len(search) {
		via = "search domain " + search[i]
	}
	t.add(RuleAutopath, name, "via "+via+", from "+from)
}

// hidden records that qname is in the table but not for a client in namespace ns.
func (t *trace) hidden(qname, ns string, tb *table.Table) {
	if t == nil {
		return
	}
	if n := tb.Hidden(qname, ns); n != nil {
		client := "namespace " + ns
		if ns == "" {
			client = "a client of unknown namespace"
		}
		t.steps = append(t.steps, Step{Rule: RuleHidden, Name: qname, Origin: n.Origin(),
			Detail: fmt.Sprintf("exportTo %v: not visible to %s", n.ExportTo(), client)})
	}
}

// match records how a lookup found its node.
func (t *trace) match(name string, m table.Match) {
	if t == nil {
		return
	}
	rule := RuleTableHit
	switch {
	case m.Kind == table.Alias && m.Node.Endpoint:
		rule = RuleEndpointShortName
	case m.Kind == table.Alias:
		rule = RuleShortName
	case m.Kind == table.Wildcard:
		rule = RuleWildcard
	case m.Kind == table.Synthesized:
		rule = RulePodName
	}
	t.steps = append(t.steps, Step{Rule: rule, Name: name, Origin: m.Node.Origin(), VIPs: m.Node.VIPs()})
}

// fetched records where an upstream answer came from: the cache (with the time its TTLs have
// left) or upstream itself.
func (t *trace) fetched(name string, f fetched, err error) {
	if t == nil {
		return
	}
	switch {
	case err != nil:
		t.add(RuleUpstreamFailed, name, err.Error())
	case f.result == ResultCacheHit:
		t.add(RuleCacheHit, name, "remaining TTL "+remainingTTL(f.msg).String())
	case f.result == ResultCacheStale:
		t.add(RuleCacheStale, name, "expired; served stale with TTL "+remainingTTL(f.msg).String())
	default:
		t.add(RuleUpstream, name, dns.RcodeToString[f.msg.Rcode])
	}
}

// remainingTTL is the least TTL of m's records: the cache counts them down.
func remainingTTL(m *dns.Msg) time.Duration {
	least := -1
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			if ttl := int(rr.Header().Ttl); least < 0 || ttl < least {
				least = ttl
			}
		}
	}
	return time.Duration(max(least, 0)) * time.Second
}

// Explain answers req for client c exactly as Query does, and says which rules produced the
// answer. A name meshdns does not own is asked through the cache, as a query would be: an
// explanation can fill the cache and start a refresh, and counts in upstream's metrics.
func (r *Resolver) Explain(ctx context.Context, req *dns.Msg, c Client) Explanation {
	tr := &trace{}
	rep := r.resolve(ctx, req, c, tr)
	e := Explanation{Namespace: c.Namespace, Search: c.Search, Steps: tr.steps,
		Result: rep.Result.String(), Upstream: tr.upstream, Rcode: dns.RcodeToString[rep.Msg.Rcode],
		Answer: rrStrings(rep.Msg.Answer), Authority: rrStrings(rep.Msg.Ns), Extra: rrStrings(rep.Msg.Extra)}
	if len(req.Question) > 0 {
		e.Name, e.Type = req.Question[0].Name, dns.TypeToString[req.Question[0].Qtype]
	}
	if e.Steps == nil {
		e.Steps = []Step{}
	}
	return e
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}
