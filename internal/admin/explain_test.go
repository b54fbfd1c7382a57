package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestDebugExplainQuestion: /debug/explain builds the question from its parameters (type and
// class by mnemonic, defaults A and IN), passes the namespace on, and refuses a bad question
// with 400 and the reason.
func TestDebugExplainQuestion(t *testing.T) {
	s := start(t, Options{Explain: func(_ *http.Request, req *dns.Msg, ns string) any {
		q := req.Question[0]
		return map[string]string{"q": q.Name + " " + dns.ClassToString[q.Qclass] + " " + dns.TypeToString[q.Qtype], "ns": ns}
	}})
	base := "http://" + s.Addr() + "/debug/explain"
	for query, want := range map[string]string{
		"?name=reviews.prod":                      `"q": "reviews.prod. IN A"`,
		"?name=x.&type=aaaa&ns=store":             `"ns": "store"`,
		"?name=version.bind&type=TXT&class=CHAOS": `"q": "version.bind. CH TXT"`,
		"?name=x.&type=TYPE65":                    `"q": "x. IN HTTPS"`,
	} {
		if code, body := get(t, base+query); code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q, want %s", query, code, body, want)
		}
	}
	for query, want := range map[string]string{
		"":                   "name is required",
		"?name=a..b":         "not a domain name",
		"?name=x.&type=NOPE": `type: unknown "NOPE"`,
		"?name=x.&class=XX":  `class: unknown "XX"`,
	} {
		if code, body := get(t, base+query); code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("%q: %d %q, want 400 %s", query, code, body, want)
		}
	}
}
