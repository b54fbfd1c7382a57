package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshdns/meshdns/internal/admin"
	"github.com/meshdns/meshdns/internal/config"
	"github.com/meshdns/meshdns/internal/resolver"
	"github.com/meshdns/meshdns/internal/table"
	"github.com/miekg/dns"
)

// adminTimeout bounds one request of explain or table to the admin endpoint.
const adminTimeout = 15 * time.Second

// explainer explains questions for /debug/explain as the DNS port answers them: for the client
// serve answers, or for a client of another namespace with the search list serve would derive
// for that namespace (ClientContext, without --search, which describes serve's own client).
func explainer(cfg config.Settings, res *resolver.Resolver, client resolver.Client, resolvSearch []string) admin.ExplainFunc {
	return func(r *http.Request, req *dns.Msg, ns string) any {
		c := client
		if ns != "" && ns != client.Namespace {
			other := cfg
			other.Namespace, other.Search = ns, nil
			c.Namespace, c.Search = other.ClientContext(resolvSearch)
		}
		return res.Explain(r.Context(), req, c)
	}
}

// explainCmd asks the admin endpoint of a running meshdns why it answers a question as it does.
func explainCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	qtype := fs.String("type", "A", "question `type` (A, AAAA, SRV, TXT, ... or TYPEnn)")
	class := fs.String("class", "IN", "question `class` (IN, CH, ANY)")
	ns := fs.String("namespace", "", "explain for a client of `namespace` (default: the one meshdns serves)")
	addr := fs.String("admin", config.DefaultAdmin, "admin `address` of the running meshdns")
	out := fs.String("o", "", "output `format`: empty for text, json")
	pos, code := parseWithArgs(fs, args, stdout, stderr)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "meshdns explain: want exactly one NAME")
		return exitUsage
	}
	if code := checkOutput(fs, *out, stderr); code >= 0 {
		return code
	}
	q := url.Values{"name": {pos[0]}, "type": {*qtype}, "class": {*class}}
	if *ns != "" {
		q.Set("ns", *ns)
	}
	body, err := adminGet(*addr, "/debug/explain?"+q.Encode())
	if err != nil {
		fmt.Fprintf(stderr, "meshdns explain: %s\n", oneLine(err.Error()))
		return 1
	}
	if *out == "json" {
		stdout.Write(body)
		return 0
	}
	var e resolver.Explanation
	if err := json.Unmarshal(body, &e); err != nil {
		fmt.Fprintf(stderr, "meshdns explain: bad answer from %s: %s\n", *addr, oneLine(err.Error()))
		return 1
	}
	printExplanation(stdout, e)
	return 0
}

// tableCmd prints the live table of a running meshdns.
func tableCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("table", flag.ContinueOnError)
	addr := fs.String("admin", config.DefaultAdmin, "admin `address` of the running meshdns")
	all := fs.Bool("all", false, "every name, not only those of the namespace meshdns serves")
	out := fs.String("o", "", "output `format`: empty for text, json")
	if code := parseFlags(fs, args, stdout, stderr); code >= 0 {
		return code
	}
	if code := checkOutput(fs, *out, stderr); code >= 0 {
		return code
	}
	body, err := adminGet(*addr, fmt.Sprintf("/debug/table?all=%t", *all))
	if err != nil {
		fmt.Fprintf(stderr, "meshdns table: %s\n", oneLine(err.Error()))
		return 1
	}
	if *out == "json" {
		stdout.Write(body)
		return 0
	}
	var entries []table.Entry
	if err := json.Unmarshal(body, &entries); err != nil {
		fmt.Fprintf(stderr, "meshdns table: bad answer from %s: %s\n", *addr, oneLine(err.Error()))
		return 1
	}
	printTable(stdout, entries)
	return 0
}

// parseWithArgs parses flags placed before, between or after the positional arguments, which
// it returns; the exit code as parseFlags, or -1 to go on.
func parseWithArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) ([]string, int) {
	var pos []string
	for {
		fs.SetOutput(io.Discard)
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, 0
		}
		if err != nil {
			fmt.Fprintf(stderr, "meshdns %s: %s\n", fs.Name(), oneLine(err.Error()))
			return nil, exitUsage
		}
		if fs.NArg() == 0 {
			return pos, -1
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

func checkOutput(fs *flag.FlagSet, out string, stderr io.Writer) int {
	if out != "" && out != "json" {
		fmt.Fprintf(stderr, "meshdns %s: -o: %q is not an output format (want json, or none for text)\n", fs.Name(), out)
		return exitUsage
	}
	return -1
}

// adminGet fetches path from the admin endpoint at addr (host:port, or a URL).
func adminGet(addr, path string) ([]byte, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("--admin %s: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint %s unreachable: %w", addr, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("admin endpoint %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin endpoint %s: %s: %s", addr, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// printExplanation writes e for people: the question and client, each step, the response.
func printExplanation(w io.Writer, e resolver.Explanation) {
	client := "a client of namespace " + e.Namespace
	if e.Namespace == "" {
		client = "a client of unknown namespace"
	}
	fmt.Fprintf(w, "%s %s as %s (search: %s)\n", e.Name, e.Type, client, strings.Join(e.Search, " "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, s := range e.Steps {
		fmt.Fprintf(tw, "  %d.\t%s\t%s\t%s\t%s\n", i+1, s.Rule, s.Name, s.Origin, s.Detail)
		for _, v := range s.VIPs {
			fmt.Fprintf(tw, "\t\tVIP %s\tleased %s\t\n", v.Addr, v.Since.UTC().Format(time.RFC3339))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "answer: %s (result %s)", e.Rcode, e.Result)
	if e.Upstream {
		fmt.Fprint(w, "; asked upstream through the cache, as a query would")
	}
	fmt.Fprintln(w)
	for _, sec := range []struct {
		name string
		rrs  []string
	}{{"answer", e.Answer}, {"authority", e.Authority}, {"additional", e.Extra}} {
		for _, rr := range sec.rrs {
			fmt.Fprintf(w, "  %-10s %s\n", sec.name, rr)
		}
	}
}

// printTable writes one line per name: the name, the object behind it, its records.
func printTable(w io.Writer, entries []table.Entry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, e := range entries {
		recs := make([]string, 0, len(e.Records))
		for _, r := range e.Records {
			recs = append(recs, rdataOf(r))
		}
		origin := e.Origin
		if origin == "" {
			origin = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Name, origin, strings.Join(recs, ", "))
	}
	tw.Flush()
}

// rdataOf shortens a record in presentation format to "TYPE data": the owner is the line's.
func rdataOf(s string) string {
	rr, err := dns.NewRR(s)
	if err != nil {
		return s
	}
	h := rr.Header()
	return dns.TypeToString[h.Rrtype] + " " + strings.TrimPrefix(rr.String(), h.String())
}
