package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// changeBound bounds how long a registry change may take to show in answers (docs/inputs.md says
// within a second; the bound leaves room for a loaded machine).
const changeBound = 5 * time.Second

func serviceYAML(name, clusterIP string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: bookinfo}
spec:
  clusterIP: %s
  ports: [{name: http, port: 8080}]
`, name, clusterIP)
}

// brokenYAML does not parse: the flow mapping on line 3 is never closed.
const brokenYAML = `apiVersion: v1
kind: Service
metadata: {name: extra, namespace: bookinfo
spec:
  clusterIP: 10.96.30.9
`

// lookup asks dig over network for qname A and returns "STATUS addr addr ..." (sorted).
func lookup(t *testing.T, c client, port, qname string) string {
	t.Helper()
	r := ask(t, c, port, qname, "A")
	var addrs []string
	for _, rr := range r.answer {
		if f := strings.Fields(rr); len(f) == 5 && f[3] == "A" {
			addrs = append(addrs, f[4])
		}
	}
	slices.Sort(addrs)
	return strings.Join(append([]string{r.status}, addrs...), " ")
}

// TestLiveRegistry edits the registry directory of a running meshdns: add, edit, break, fix,
// rename into place, delete. Names of the other files must keep answering throughout.
func TestLiveRegistry(t *testing.T) {
	need(t, "dig")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(examplePath("registry"))); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serveOptions{args: examplesArgs(dir, "")})
	const extra = "extra.bookinfo.svc.cluster.local."
	extraFile := filepath.Join(dir, "extra.yaml")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// becomes polls until qname answers want ("STATUS addr ..."), then checks both transports.
	becomes := func(qname, want string) {
		t.Helper()
		eventually(t, changeBound, qname, func() string {
			if got := lookup(t, digUDP, srv.dnsPort, qname); got != want {
				return fmt.Sprintf("answers %q, want %q", got, want)
			}
			return ""
		})
		answers(t, srv.dnsPort, qname, want)
	}
	othersUnaffected := func() {
		t.Helper()
		answers(t, srv.dnsPort, "reviews.bookinfo.svc.cluster.local.", "NOERROR 10.96.10.20")
		answers(t, srv.dnsPort, "mysql-0.mysql.data.svc.cluster.local.", "NOERROR 10.244.1.21")
	}

	answers(t, srv.dnsPort, extra, "NXDOMAIN")
	othersUnaffected()

	t.Log("add a file")
	write(extraFile, serviceYAML("extra", "10.96.30.1"))
	becomes(extra, "NOERROR 10.96.30.1")
	othersUnaffected()

	t.Log("edit it")
	write(extraFile, serviceYAML("extra", "10.96.30.2"))
	becomes(extra, "NOERROR 10.96.30.2")
	othersUnaffected()

	t.Log("break it: the last good content stays, the error is logged and counted")
	write(extraFile, brokenYAML)
	logged := regexp.MustCompile(`extra\.yaml.*line \d+`)
	eventually(t, changeBound, "parse error reported", func() string {
		if n := metricValue(t, srv, "meshdns_registry_parse_errors_total", nil); n < 1 {
			return fmt.Sprintf("meshdns_registry_parse_errors_total = %v, want >= 1", n)
		}
		return ""
	})
	if !slices.ContainsFunc(strings.Split(srv.stderr.String(), "\n"), logged.MatchString) {
		t.Errorf("no log line names extra.yaml and a line number (want a match of %q)", logged)
	}
	answers(t, srv.dnsPort, extra, "NOERROR 10.96.30.2")
	othersUnaffected()

	t.Log("fix it")
	write(extraFile, serviceYAML("extra", "10.96.30.3"))
	becomes(extra, "NOERROR 10.96.30.3")
	othersUnaffected()

	t.Log("rename a file into place")
	staged := filepath.Join(dir, "renamed.yaml.tmp")
	write(staged, serviceYAML("renamed", "10.96.30.4"))
	if err := os.Rename(staged, filepath.Join(dir, "renamed.yaml")); err != nil {
		t.Fatal(err)
	}
	becomes("renamed.bookinfo.svc.cluster.local.", "NOERROR 10.96.30.4")
	answers(t, srv.dnsPort, extra, "NOERROR 10.96.30.3")
	othersUnaffected()

	t.Log("delete a file: its names go")
	if err := os.Remove(extraFile); err != nil {
		t.Fatal(err)
	}
	becomes(extra, "NXDOMAIN")
	answers(t, srv.dnsPort, "renamed.bookinfo.svc.cluster.local.", "NOERROR 10.96.30.4")
	othersUnaffected()
}

// answers checks that qname answers want ("STATUS addr ...") over UDP and TCP, now.
func answers(t *testing.T, port, qname, want string) {
	t.Helper()
	for _, c := range []client{digUDP, digTCP} {
		if got := lookup(t, c, port, qname); got != want {
			t.Errorf("%s %s: %q, want %q", c.name, qname, got, want)
		}
	}
}
