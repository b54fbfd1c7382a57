package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// digTimeout bounds one dig or kdig run (its own retries included).
const digTimeout = 15 * time.Second

// A client is a real DNS client and its transport.
type client struct {
	name string // subtest name: "dig/udp", "kdig/tcp", ...
	tool string
	args []string
}

var (
	digUDP  = client{"dig/udp", "dig", nil}
	digTCP  = client{"dig/tcp", "dig", []string{"+tcp"}}
	kdigUDP = client{"kdig/udp", "kdig", nil}
	kdigTCP = client{"kdig/tcp", "kdig", []string{"+tcp"}}
)

// reply is what dig or kdig printed, sections normalised (see normalizeRR).
type reply struct {
	status     string
	flags      map[string]bool
	answer     []string
	authority  []string
	additional []string
	output     string // raw output, for failure messages
}

// ask runs c against 127.0.0.1:port for qname and qtype; extra are more options of the tool.
func ask(t *testing.T, c client, port, qname, qtype string, extra ...string) reply {
	t.Helper()
	bin := need(t, c.tool)
	args := []string{"@127.0.0.1", "-p", port, qname, qtype}
	switch c.tool {
	case "dig":
		args = append(args, "+noall", "+comments", "+answer", "+authority", "+additional", "+time=2", "+tries=2")
	case "kdig":
		args = append(args, "+noall", "+header", "+comments", "+answer", "+authority", "+additional",
			"+timeout=2", "+retry=1")
	}
	args = append(append(args, c.args...), extra...)
	ctx, cancel := context.WithTimeout(context.Background(), digTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := parseReply(stdout.String())
	if err != nil || r.status == "" {
		t.Fatalf("%s %s: %v: no reply\nstdout:\n%s\nstderr:\n%s", c.tool, strings.Join(args, " "), err, &stdout, &stderr)
	}
	return r
}

var (
	statusRE  = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRE   = regexp.MustCompile(`(?i)^;; flags: ([a-z ]*);`)
	sectionRE = regexp.MustCompile(`^;; ([A-Z]+) (PSEUDO)?SECTION:`)
)

// parseReply reads the output of dig (or kdig) with +comments: the status and flags lines of
// the header and the records under each section title. Other comment lines (dig's mDNS
// warning for .local names, the OPT pseudo-section) are skipped.
func parseReply(out string) reply {
	r := reply{flags: map[string]bool{}, output: out}
	var section *[]string
	for line := range strings.SplitSeq(out, "\n") {
		if m := statusRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "HEADER") {
			r.status = m[1]
			continue
		}
		if m := flagsRE.FindStringSubmatch(line); m != nil {
			for f := range strings.FieldsSeq(m[1]) {
				r.flags[f] = true
			}
			continue
		}
		if m := sectionRE.FindStringSubmatch(line); m != nil {
			switch m[1] {
			case "ANSWER":
				section = &r.answer
			case "AUTHORITY":
				section = &r.authority
			case "ADDITIONAL":
				section = &r.additional
			default:
				section = nil
			}
			continue
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, ";") || section == nil {
			continue
		}
		*section = append(*section, normalizeRR(line))
	}
	return r
}

// normalizeRR joins the fields of a presentation-format record with single spaces and
// replaces an SOA's serial with "N": the serial is the table generation, which moves with
// every rebuild.
func normalizeRR(line string) string {
	f := strings.Fields(line)
	if len(f) >= 7 && f[3] == "SOA" {
		f[6] = "N"
	}
	return strings.Join(f, " ")
}

// anyTTL replaces the TTL of normalised records, for records that come from upstream.
func anyTTL(rrs []string) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		f := strings.Fields(rr)
		if len(f) > 1 {
			f[1] = "TTL"
		}
		out = append(out, strings.Join(f, " "))
	}
	return out
}

func sortedRRs(rrs []string, maskTTL bool) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, normalizeRR(rr))
	}
	if maskTTL {
		out = anyTTL(out)
	}
	slices.Sort(out)
	return out
}

// dnsCase is one question and the reply expected, written as dig prints it.
type dnsCase struct {
	name  string
	qname string
	qtype string
	rcode string
	// answer, authority and additional are compared as sets (headless answers are
	// shuffled); a CNAME listed first must also come first.
	answer, authority, additional []string
	// forwarded: the answer (or part of it) comes from upstream, so aa is not required,
	// TTLs of upstream records are not compared and, with anyAuthority, neither is the
	// authority section.
	forwarded    bool
	anyAuthority bool
	// kdig: also ask with kdig, over UDP and TCP.
	kdig bool
}

// runCases asks every case over UDP and TCP with dig (and kdig where the case says so) from
// meshdns on port.
func runCases(t *testing.T, port string, cases []dnsCase) {
	t.Helper()
	for _, tc := range cases {
		clients := []client{digUDP, digTCP}
		if tc.kdig {
			clients = append(clients, kdigUDP, kdigTCP)
		}
		for _, c := range clients {
			t.Run(tc.name+"/"+c.name, func(t *testing.T) {
				tc.check(t, ask(t, c, port, tc.qname, tc.qtype))
			})
		}
	}
}

func (tc dnsCase) check(t *testing.T, r reply) {
	t.Helper()
	bad := false
	report := func(format string, args ...any) {
		t.Errorf(format, args...)
		bad = true
	}
	if r.status != tc.rcode {
		report("status %s, want %s", r.status, tc.rcode)
	}
	if !tc.forwarded && !r.flags["aa"] {
		report("local answer without the aa flag")
	}
	if r.flags["tc"] {
		report("tc flag set on a small answer")
	}
	sections := []struct {
		name      string
		got, want []string
		skip      bool
	}{
		{"answer", r.answer, tc.answer, false},
		{"authority", r.authority, tc.authority, tc.anyAuthority},
		{"additional", r.additional, tc.additional, false},
	}
	for _, s := range sections {
		if s.skip {
			continue
		}
		got, want := sortedRRs(s.got, tc.forwarded), sortedRRs(s.want, tc.forwarded)
		if !slices.Equal(got, want) {
			report("%s section:\n got %q\nwant %q", s.name, got, want)
		}
	}
	if want := sortedRRs(tc.answer[:min(1, len(tc.answer))], tc.forwarded); len(want) == 1 && strings.Fields(want[0])[3] == "CNAME" {
		if got := sortedRRs(r.answer[:min(1, len(r.answer))], tc.forwarded); !slices.Equal(got, want) {
			report("answer starts with %q, want the CNAME %q first", got, want)
		}
	}
	if bad {
		t.Logf("output:\n%s", r.output)
	}
}
