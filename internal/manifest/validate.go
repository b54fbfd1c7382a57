package manifest

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/meshdns/meshdns/internal/model"
)

// fieldPath is a position in a manifest: string keys and int list indices.
type fieldPath []any

func (p fieldPath) String() string {
	var b strings.Builder
	for _, seg := range p {
		switch s := seg.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, s)
		}
	}
	return b.String()
}

// with returns a new path extended by segs; it never shares the receiver's backing array, so
// sibling paths built from one parent stay independent.
func (p fieldPath) with(segs ...any) fieldPath {
	out := make(fieldPath, 0, len(p)+len(segs))
	return append(append(out, p...), segs...)
}

// fieldError is an invalid value at a manifest path; line is filled in from the YAML node.
type fieldError struct {
	path     fieldPath
	value    string
	hasValue bool
	msg      string
	line     int
}

func (e *fieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.path.String())
	if e.hasValue {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Quote(e.value))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

func invalid(p fieldPath, value, msg string) error {
	return &fieldError{path: p, value: value, hasValue: true, msg: msg}
}

func required(p fieldPath) error { return &fieldError{path: p, msg: "required"} }

// objectMeta is metav1.ObjectMeta, reduced.
type objectMeta struct {
	Name              string            `yaml:"name"`
	Namespace         string            `yaml:"namespace"`
	Labels            map[string]string `yaml:"labels"`
	CreationTimestamp string            `yaml:"creationTimestamp"`
}

// toModel validates the metadata of a namespaced object. nameOK is the API's rule for the
// kind's name (DNS label or DNS subdomain), since names end up inside DNS names.
func (m objectMeta) toModel(nameOK func(string) bool) (model.Meta, error) {
	p := fieldPath{"metadata"}
	if m.Name == "" {
		return model.Meta{}, required(p.with("name"))
	}
	if !nameOK(m.Name) {
		return model.Meta{}, invalid(p.with("name"), m.Name, "not a valid DNS name")
	}
	ns := m.Namespace
	if ns == "" {
		ns = "default"
	}
	if !isDNSLabel(ns) {
		return model.Meta{}, invalid(p.with("namespace"), ns, "not a valid DNS label")
	}
	meta := model.Meta{Namespace: ns, Name: m.Name, Labels: m.Labels}
	if m.CreationTimestamp != "" {
		t, err := time.Parse(time.RFC3339, m.CreationTimestamp)
		if err != nil {
			return model.Meta{}, invalid(p.with("creationTimestamp"), m.CreationTimestamp, "not an RFC 3339 time")
		}
		meta.Created = t
	}
	return meta, nil
}

// parseIP accepts a plain IP address (no zone); IPv4-mapped IPv6 becomes IPv4.
func parseIP(p fieldPath, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, invalid(p, s, "not an IP address")
	}
	return a.Unmap(), nil
}

// parsePrefix accepts an IP (a full-length prefix) or a CIDR.
func parsePrefix(p fieldPath, s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := parseIP(p, s)
		if err != nil {
			return netip.Prefix{}, invalid(p, s, "not an IP address or CIDR")
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, invalid(p, s, "not an IP address or CIDR")
	}
	return pfx, nil
}

func portNumber(p fieldPath, n int) (uint16, error) {
	if n < 1 || n > 65535 {
		return 0, invalid(p, strconv.Itoa(n), "port must be between 1 and 65535")
	}
	return uint16(n), nil
}

// isDNSLabel is the RFC 1123 label rule Kubernetes applies to namespaces and service names.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isDNSSubdomain is the RFC 1123 subdomain rule Kubernetes applies to most object names.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !isDNSLabel(l) {
			return false
		}
	}
	return true
}
