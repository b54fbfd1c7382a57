package resolver

import (
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/miekg/dns"
)

// otherClass answers a question of a class other than IN and ANY, which meshdns neither holds
// nor forwards: the CHAOS names that ask a server for its version or identity (RFC 4892) get
// the configured text, every other one REFUSED.
func (r *Resolver) otherClass(req *dns.Msg, tr *trace) Reply {
	q := req.Question[0]
	text := ""
	if q.Qclass == dns.ClassCHAOS {
		text = r.chaosText(q.Name)
	}
	if text == "" {
		if tr != nil {
			tr.add(RuleRejected, dnsname.Lower(q.Name), "class "+dns.ClassToString[q.Qclass]+": REFUSED")
		}
		return Reply{Msg: reply(req, dns.RcodeRefused), Result: ResultRejected}
	}
	if tr != nil {
		tr.add(RuleLocal, dnsname.Lower(q.Name), "")
	}
	m := reply(req, dns.RcodeSuccess)
	m.Authoritative = true
	if q.Qtype == dns.TypeTXT || q.Qtype == dns.TypeANY {
		m.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS},
			Txt: []string{text}}}
	}
	return Reply{Msg: m, Result: ResultLocal}
}

// chaosText is the text configured for a CHAOS identity name, empty for any other name.
func (r *Resolver) chaosText(name string) string {
	switch dnsname.Lower(name) {
	case "version.bind.", "version.server.":
		return r.opts.ChaosVersion
	case "hostname.bind.", "id.server.":
		return r.opts.ChaosID
	}
	return ""
}
