package e2e

import (
	"regexp"
	"testing"
)

// cookieRE is dig's line for the COOKIE option of a reply: client and server cookie in hex,
// "good" when the client cookie is the one dig sent.
var cookieRE = regexp.MustCompile(`COOKIE: ([0-9a-f]{16})([0-9a-f]*) \(good\)`)

// TestCookiesAnswered: dig +cookie gets a 16-byte server cookie; sending it back is accepted
// and answered, and a forged one is answered too, with a fresh server cookie (RFC 7873 §5.2).
func TestCookiesAnswered(t *testing.T) {
	srv := startServer(t, serveOptions{args: examplesArgs(examplePath("registry"), "")})
	const qname = "reviews.bookinfo.svc.cluster.local."
	for _, c := range []client{digUDP, digTCP} {
		first := askCookie(t, c, srv.dnsPort, qname, "+cookie")
		clientCk, serverCk := first[:16], first[16:]
		if len(serverCk) != 32 {
			t.Fatalf("%s: server cookie %q, want 16 bytes", c.name, serverCk)
		}
		// Twice: the second time the fast path answers (UDP).
		for range 2 {
			if got := askCookie(t, c, srv.dnsPort, qname, "+cookie="+first); got[:16] != clientCk || len(got) != 48 {
				t.Errorf("%s: cookie %q sent back, got %q", c.name, first, got)
			}
		}
		forged := first[:40] + "00000000"
		if forged == first {
			forged = first[:40] + "11111111"
		}
		if got := askCookie(t, c, srv.dnsPort, qname, "+cookie="+forged); got[:16] != clientCk || len(got) != 48 || got == forged {
			t.Errorf("%s: forged cookie %q answered with %q, want a fresh server cookie", c.name, forged, got)
		}
	}
}

// askCookie asks with dig's cookie option and returns the reply's COOKIE in hex, after
// checking that the question was answered.
func askCookie(t *testing.T, c client, port, qname, opt string) string {
	t.Helper()
	r := ask(t, c, port, qname, "A", opt)
	if r.status != "NOERROR" || len(r.answer) == 0 {
		t.Fatalf("%s %s: %s with %q, want an answer\n%s", c.name, opt, r.status, r.answer, r.output)
	}
	m := cookieRE.FindStringSubmatch(r.output)
	if m == nil {
		t.Fatalf("%s %s: no COOKIE in the reply\n%s", c.name, opt, r.output)
	}
	return m[1] + m[2]
}
