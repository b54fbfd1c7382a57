package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/meshdns/meshdns/internal/agent"
	"github.com/meshdns/meshdns/internal/controller"
)

const dashboardFile = "../../deploy/grafana/meshdns.json"

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	SchemaVersion int              `json:"schemaVersion"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID      int              `json:"id"`
	Type    string           `json:"type"`
	Title   string           `json:"title"`
	Panels  []dashboardPanel `json:"panels"` // of a collapsed row
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// TestDashboardMetricsExist runs serve and checks that every metric the Grafana dashboard
// queries, in its panels and its template variables, is one serve, an agent (serve
// --controller) or the controller exposes: a renamed metric must not leave an empty panel
// behind. The labels it matches and groups by must be labels of those metrics (or ones
// Prometheus adds: instance, job, pod, namespace, le). It also checks the dashboard's shape:
// unique panel ids, a data source variable and an instance variable, and no use of a
// variable the dashboard lacks.
func TestDashboardMetricsExist(t *testing.T) {
	d := readDashboard(t)
	exprs := dashboardExprs(t, d)
	reg := runServe(t, "--registry", "../../examples/registry", "--resolv-conf", "../../examples/resolv.conf",
		"--upstream", "127.0.0.1:9", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--state-dir", t.TempDir())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]dto.MetricType{}
	labels := map[string]bool{"instance": true, "job": true, "pod": true, "namespace": true, "le": true}
	// An agent's metrics come with --controller, the controller's with `meshdns controller`:
	// their descriptions stand in for series serve does not have.
	var described describedMetrics
	agent.NewMetrics(&described)
	controller.NewMetrics(&described)
	described.addTo(t, types, labels)
	for _, mf := range mfs {
		types[mf.GetName()] = mf.GetType()
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
	}
	for _, expr := range exprs {
		names := promqlMetrics(expr)
		if len(names) == 0 {
			t.Errorf("no metric found in %q", expr)
		}
		for _, name := range names {
			if !exported(types, name) && !slices.Contains(kubeOnlyMetrics, name) {
				t.Errorf("the dashboard queries %s (in %q); meshdns does not expose it", name, expr)
			}
		}
		for _, label := range promqlLabels(expr) {
			if !labels[label] {
				t.Errorf("the dashboard uses label %s (in %q); no metric of meshdns has it", label, expr)
			}
		}
	}
}

// exported reports whether name is a metric of types, or a series of one of its histograms.
func exported(types map[string]dto.MetricType, name string) bool {
	if _, ok := types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && types[base] == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d: older than Grafana 11's", d.SchemaVersion)
	}
	return d
}

// dashboardExprs returns the PromQL of every panel target and query variable of d, and checks
// that panel ids are unique and the variables the panels use exist.
func dashboardExprs(t *testing.T, d dashboard) []string {
	t.Helper()
	var exprs []string
	ids := map[int]string{}
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			if other, ok := ids[p.ID]; ok || p.ID == 0 {
				t.Errorf("panel %q has id %d, as %q has", p.Title, p.ID, other)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, target := range p.Targets {
				exprs = append(exprs, target.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type == "query" {
			exprs = append(exprs, variableQuery(t, v.Query), v.Definition)
		}
	}
	for _, expr := range exprs {
		for _, m := range grafanaVariable.FindAllStringSubmatch(expr, -1) {
			if _, ok := vars[m[1]]; !ok && !strings.HasPrefix(m[1], "__") {
				t.Errorf("%q uses $%s, which is no variable of the dashboard", expr, m[1])
			}
		}
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("template variables %v: want a datasource variable and an instance query variable", vars)
	}
	return exprs
}

var grafanaVariable = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)`)

// describedMetrics is a prometheus.Registerer that keeps what it is given, so that the names
// and labels of metrics without series (a vector nobody has used yet) can be read.
type describedMetrics struct{ collectors []prometheus.Collector }

func (d *describedMetrics) Register(c prometheus.Collector) error {
	d.collectors = append(d.collectors, c)
	return nil
}

func (d *describedMetrics) MustRegister(cs ...prometheus.Collector) {
	d.collectors = append(d.collectors, cs...)
}

func (d *describedMetrics) Unregister(prometheus.Collector) bool { return false }

// descFields reads a metric's name and variable labels from prometheus.Desc's String.
var descFields = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// addTo adds the described metrics to types (histograms as such, the rest untyped) and their
// variable labels to labels.
func (d *describedMetrics) addTo(t *testing.T, types map[string]dto.MetricType, labels map[string]bool) {
	t.Helper()
	for _, c := range d.collectors {
		kind := dto.MetricType_UNTYPED
		if _, ok := c.(prometheus.Histogram); ok {
			kind = dto.MetricType_HISTOGRAM
		}
		ch := make(chan *prometheus.Desc, 8)
		go func() {
			c.Describe(ch)
			close(ch)
		}()
		for desc := range ch {
			m := descFields.FindStringSubmatch(desc.String())
			if m == nil {
				t.Fatalf("cannot read the metric of %s", desc)
			}
			types[m[1]] = kind
			for l := range strings.SplitSeq(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels[l] = true
				}
			}
		}
	}
	if len(d.collectors) == 0 {
		t.Fatal("no metrics described")
	}
}

// variableQuery returns a query variable's PromQL, a string or, as Grafana 10 and later
// store it, an object with a query field.
func variableQuery(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(raw, &q); err != nil {
		t.Fatalf("variable query %s: %v", raw, err)
	}
	return q.Query
}

var (
	promqlString   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promqlBraces   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlWords    = []string{"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
		"and", "or", "unless", "offset", "inf", "nan"}
)

// promqlMetrics returns the metric names a PromQL expression selects, or Grafana's
// label_values(expr, label) of one: every identifier that is not in a string, a label matcher,
// a range, a grouping clause, a function call, a keyword or a number.
func promqlMetrics(expr string) []string {
	expr = strings.TrimSpace(expr)
	if inner, ok := strings.CutPrefix(expr, "label_values("); ok {
		inner = strings.TrimSuffix(inner, ")")
		i := strings.LastIndex(inner, ",")
		if i < 0 {
			return nil // label_values(label): no metric
		}
		expr = inner[:i]
	}
	expr = promqlString.ReplaceAllString(expr, " ")
	expr = promqlBraces.ReplaceAllString(expr, " ")
	expr = promqlGrouping.ReplaceAllString(expr, " ")
	var names []string
	for _, loc := range promqlIdent.FindAllStringIndex(expr, -1) {
		word := expr[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsRune("0123456789.$", rune(expr[loc[0]-1])) {
			continue // a number's exponent or a duration's unit, or a Grafana variable
		}
		if strings.HasPrefix(strings.TrimSpace(expr[loc[1]:]), "(") || slices.Contains(promqlWords, strings.ToLower(word)) {
			continue
		}
		if !slices.Contains(names, word) {
			names = append(names, word)
		}
	}
	return names
}

var (
	promqlMatcher = regexp.MustCompile(`\{[^}]*\}`)
	promqlLabel   = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promqlGroupBy = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)
)

// promqlLabels returns the label names a PromQL expression matches or groups by (not the
// label of Grafana's label_values(expr, label)).
func promqlLabels(expr string) []string {
	expr = promqlString.ReplaceAllString(expr, " ")
	var names []string
	for _, m := range promqlMatcher.FindAllString(expr, -1) {
		for _, l := range promqlLabel.FindAllStringSubmatch(m, -1) {
			names = append(names, l[1])
		}
	}
	for _, g := range promqlGroupBy.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				names = append(names, l)
			}
		}
	}
	return names
}

// TestPromQLMetrics checks that promqlMetrics finds the metrics, and only the metrics, of the
// kinds of expression the dashboard uses.
func TestPromQLMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (result) (rate(meshdns_queries_total{instance=~"$instance",result="a b"}[$__rate_interval]))`: {"meshdns_queries_total"},
		`histogram_quantile(0.99, sum by (upstream, le) (rate(meshdns_upstream_latency_seconds_bucket[5m])))`: {"meshdns_upstream_latency_seconds_bucket"},
		`max by (family) (a_x) / on (family) group_left max(b_y offset 1h) > bool 1e3`:                        {"a_x", "b_y"},
		`sum(rate(c_total[5m])) without (instance) and d`:                                                     {"c_total", "d"},
		`label_values(meshdns_table_generation{job="x"}, instance)`:                                           {"meshdns_table_generation"},
		`label_values(instance)`: nil,
	} {
		if got := promqlMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promqlMetrics(%q) = %v, want %v", expr, got, want)
		}
	}
}
