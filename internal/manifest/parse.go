package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/meshdns/meshdns/internal/model"
)

// ParseError is why a manifest file was rejected.
type ParseError struct {
	File     string
	Document int // 1-based index of the YAML document in the file
	Line     int // 1-based line in the file; 0 when the YAML parser did not say
	Err      error
}

func (e *ParseError) Error() string {
	var ye *yamlError
	if e.Line == 0 || errors.As(e.Err, &ye) && ye.line != 0 {
		// YAML library messages already start with "line N:" when the library knows it.
		return fmt.Sprintf("%s: document %d: %v", e.File, e.Document, e.Err)
	}
	return fmt.Sprintf("%s: document %d (line %d): %v", e.File, e.Document, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// yamlError is a syntax or type error reported by the YAML library, minus its "yaml: " prefix.
type yamlError struct {
	line int
	msg  string
}

func (e *yamlError) Error() string { return e.msg }

// errIgnored marks an object that is understood but deliberately skipped (e.g. FQDN slices).
var errIgnored = errors.New("ignored")

// ParseFile parses one manifest file. name is used in errors and logs only. Unknown kinds and
// empty documents are skipped (logged at debug); any invalid object rejects the whole file.
func ParseFile(name string, data []byte, log *slog.Logger) (model.Snapshot, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &fileParser{name: name, log: log}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for idx := 1; ; idx++ {
		var doc yaml.Node
		err := decodeStream(dec, &doc)
		if errors.Is(err, io.EOF) {
			return p.snap, nil
		}
		if err != nil {
			return model.Snapshot{}, p.fail(idx, 0, err)
		}
		if err := p.document(idx, &doc); err != nil {
			return model.Snapshot{}, err
		}
	}
}

// fileParser accumulates the objects of one file.
type fileParser struct {
	name string
	log  *slog.Logger
	snap model.Snapshot
}

func (p *fileParser) document(idx int, doc *yaml.Node) error {
	root := doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			root = nil
		} else {
			root = doc.Content[0]
		}
	}
	if root == nil || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
		p.log.Debug("registry: ignoring empty document", "file", p.name, "document", idx)
		return nil
	}
	if err := p.object(idx, root); err != nil {
		return p.fail(idx, root.Line, err)
	}
	return nil
}

// fail wraps err as the ParseError of document idx; line is the fallback when err has none.
func (p *fileParser) fail(idx, line int, err error) error {
	var fe *fieldError
	var ye *yamlError
	switch {
	case errors.As(err, &fe) && fe.line != 0:
		line = fe.line
	case errors.As(err, &ye) && ye.line != 0:
		line = ye.line
	}
	return &ParseError{File: p.name, Document: idx, Line: line, Err: err}
}

// header is what every Kubernetes object starts with.
type header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

// object converts one object (a document or a List item) and appends it to the snapshot.
func (p *fileParser) object(idx int, n *yaml.Node) error {
	n = resolveAlias(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return &fieldError{msg: "not a mapping (want a Kubernetes object)", line: lineOf(n, nil)}
	}
	var h header
	if err := decodeNode(n, &h); err != nil {
		return err
	}
	handled, err := p.convert(idx, h, n)
	if errors.Is(err, errIgnored) {
		p.log.Debug("registry: ignoring object", "file", p.name, "document", idx,
			"kind", h.Kind, "apiVersion", h.APIVersion, "reason", err)
		return nil
	}
	if err != nil {
		var fe *fieldError
		if errors.As(err, &fe) && fe.line == 0 {
			fe.line = lineOf(n, fe.path)
		}
		return err
	}
	if !handled {
		p.log.Debug("registry: ignoring unknown kind", "file", p.name, "document", idx,
			"kind", h.Kind, "apiVersion", h.APIVersion)
	}
	return nil
}

// convert dispatches on apiVersion and kind. The group must match; any listed version will do.
func (p *fileParser) convert(idx int, h header, n *yaml.Node) (bool, error) {
	group, version := splitAPIVersion(h.APIVersion)
	s := &p.snap
	switch {
	case group == "" && version == "v1":
		switch h.Kind {
		case "Service":
			return true, add[model.Service, serviceObj](n, &s.Services)
		case "Pod":
			return true, add[model.Pod, podObj](n, &s.Pods)
		case "Namespace":
			return true, add[model.Namespace, namespaceObj](n, &s.Namespaces)
		case "List":
			return true, p.list(idx, n)
		}
	case group == "discovery.k8s.io" && version == "v1" && h.Kind == "EndpointSlice":
		return true, add[model.EndpointSlice, endpointSliceObj](n, &s.EndpointSlices)
	case group == "networking.istio.io" && isIstioVersion(version):
		switch h.Kind {
		case "ServiceEntry":
			return true, add[model.ServiceEntry, serviceEntryObj](n, &s.ServiceEntries)
		case "WorkloadEntry":
			return true, add[model.WorkloadEntry, workloadEntryObj](n, &s.WorkloadEntries)
		}
	}
	return false, nil
}

func splitAPIVersion(v string) (group, version string) {
	if i := strings.LastIndexByte(v, '/'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return "", v
}

func isIstioVersion(v string) bool { return v == "v1" || v == "v1beta1" || v == "v1alpha3" }

// list converts the items of a kind: List, as written by kubectl get -o yaml.
func (p *fileParser) list(idx int, n *yaml.Node) error {
	var l struct {
		Items []yaml.Node `yaml:"items"`
	}
	if err := decodeNode(n, &l); err != nil {
		return err
	}
	for i := range l.Items {
		item := &l.Items[i]
		if err := p.object(idx, item); err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				fe.path = append(fieldPath{"items", i}, fe.path...)
			}
			return err
		}
	}
	return nil
}

// converter is a private manifest struct that knows its model record.
type converter[T any, O any] interface {
	*O
	toModel() (T, error)
}

// add decodes n into a fresh O and appends its model record to dst.
func add[T any, O any, P converter[T, O]](n *yaml.Node, dst *[]T) error {
	var obj O
	if err := decodeNode(n, &obj); err != nil {
		return err
	}
	rec, err := P(&obj).toModel()
	if err != nil {
		return err
	}
	*dst = append(*dst, rec)
	return nil
}

// decodeStream reads the next document. The recover is a last line of defence: a panic inside
// the third-party YAML parser must reject a file, not bring the proxy down.
func decodeStream(dec *yaml.Decoder, out *yaml.Node) (err error) {
	defer recoverYAML(&err)
	return yamlErr(dec.Decode(out))
}

func decodeNode(n *yaml.Node, out any) (err error) {
	defer recoverYAML(&err)
	return yamlErr(n.Decode(out))
}

func recoverYAML(err *error) {
	if r := recover(); r != nil {
		*err = &yamlError{msg: fmt.Sprintf("YAML parser failed: %v", r)}
	}
}

// yamlErr turns the YAML library's errors into yamlError, keeping the line it reported and
// naming Go types in manifest terms.
func yamlErr(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			// Nodes built from generic data (ParseObject) have no line, which yaml.v3 prints as 0.
			msgs[i] = friendlyType(strings.TrimPrefix(m, "line 0: "))
		}
		return &yamlError{line: leadingLine(msgs[0]), msg: strings.Join(msgs, "; ")}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := leadingLine(msg)
	if problem := strings.TrimPrefix(msg, fmt.Sprintf("line %d: ", line)); parserProblems[problem] {
		// yaml.v3 prints the 0-based line for parser (not scanner) errors, and none for line 0.
		line++
		msg = fmt.Sprintf("line %d: %s", line, problem)
	}
	return &yamlError{line: line, msg: msg}
}

// parserProblems are the messages of yaml.v3's parser errors (parserc.go), whose line needs +1.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// leadingLine returns N from a message starting with "line N:", or 0.
func leadingLine(msg string) int {
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0
	}
	return n
}

// friendlyType rewrites "cannot unmarshal !!str `x` into []manifest.kubePort" so users see
// manifest shapes rather than this package's private Go types.
func friendlyType(msg string) string {
	head, goType, ok := strings.Cut(msg, " into ")
	if !ok {
		return msg
	}
	var want string
	switch {
	case strings.HasPrefix(goType, "[]"):
		want = "a list"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."), strings.HasPrefix(goType, "struct"):
		want = "a mapping"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		want = "an integer"
	case goType == "bool":
		want = "a boolean"
	case goType == "string":
		want = "a string"
	default:
		return msg
	}
	return head + ", want " + want
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	// Bounded: an alias cannot point at another alias in a parsed document, but stay safe.
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

// lineOf returns the line of the field at path below n or, when the field is absent, of its
// deepest present ancestor. Mapping fields report their key's line, which is where a reader
// looks even when the value is a block starting on the next line.
func lineOf(n *yaml.Node, path fieldPath) int {
	if n == nil {
		return 0
	}
	line := n.Line
	for _, seg := range path {
		var at int
		n, at = child(resolveAlias(n), seg)
		if n == nil {
			return line
		}
		line = at
	}
	return line
}

// child returns the value of seg (a key or an index) in n and the line naming it.
func child(n *yaml.Node, seg any) (*yaml.Node, int) {
	if n == nil {
		return nil, 0
	}
	switch s := seg.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil, 0
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Value == s {
				return n.Content[i+1], k.Line
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && s >= 0 && s < len(n.Content) {
			return n.Content[s], n.Content[s].Line
		}
	}
	return nil, 0
}
