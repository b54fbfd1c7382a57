package e2e

import "testing"

// TestAllowClients: the binary refuses, over UDP and TCP, a client outside --allow-clients
// (dig from 127.0.0.1) and answers one inside it (dig from 127.0.0.2).
func TestAllowClients(t *testing.T) {
	srv := startServer(t, serveOptions{args: append(examplesArgs(examplePath("registry"), ""),
		"--allow-clients", "127.0.0.2/32")})
	const qname = "reviews.bookinfo.svc.cluster.local."
	for _, c := range []client{digUDP, digTCP} {
		if r := ask(t, c, srv.dnsPort, qname, "A"); r.status != "REFUSED" || len(r.answer) != 0 {
			t.Errorf("%s from 127.0.0.1: %s with %q, want REFUSED and nothing\n%s", c.name, r.status, r.answer, r.output)
		}
		if r := ask(t, c, srv.dnsPort, qname, "A", "-b", "127.0.0.2"); r.status != "NOERROR" || len(r.answer) == 0 {
			t.Errorf("%s from 127.0.0.2: %s with %q, want an answer\n%s", c.name, r.status, r.answer, r.output)
		}
	}
}
