package dnsname

import (
	"errors"
	"fmt"
	"strings"
)

// MaxNameLen is the longest name in presentation form without the trailing dot: 255 bytes on
// the wire (RFC 1035 §2.3.4) less the length octets and the root.
const MaxNameLen = 253

// MaxLabelLen is the longest label (RFC 1035 §2.3.4).
const MaxLabelLen = 63

// Root is the root domain; every name is in it.
const Root FQDN = "."

// FQDN is a validated, lower-case, fully qualified name with its trailing dot. Only ToFQDN
// (and conversions in this package) make one, so an FQDN is always normalised.
type FQDN string

// ToFQDN validates s as a host-style name (labels of letters, digits, '-' and '_', 1 to 63
// bytes, 253 in all; with or without the trailing dot) and returns it normalised. The root
// "." is accepted.
func ToFQDN(s string) (FQDN, error) {
	if s == "." {
		return Root, nil
	}
	h, err := ParseHost(s, false)
	if err != nil {
		return "", err
	}
	return FQDN(h + "."), nil
}

// String returns the name with its trailing dot.
func (f FQDN) String() string { return string(f) }

// WithoutTrailingDot returns the host spelling of f ("" for the root).
func (f FQDN) WithoutTrailingDot() string { return strings.TrimSuffix(string(f), ".") }

// Contains reports whether name (a lower-case FQDN string) is f or below it.
func (f FQDN) Contains(name string) bool { return InDomain(name, string(f)) }

var errEmpty = errors.New("empty name")

// ParseHost validates s as a host name and returns it lower-case without a trailing dot.
// Labels hold letters, digits, '-' and '_' (Istio allows '_'), do not start or end with '-',
// and are 1 to 63 bytes; the name is at most 253 bytes. With wildcard, a leading "*." label
// is allowed and kept.
func ParseHost(s string, wildcard bool) (string, error) { return parse(s, wildcard, true) }

// ParseDomain validates s as ParseHost does, without wildcards, except that a label may start
// or end with '-': that rule is for host names (RFC 952, RFC 1123 §2.1), and a domain that
// only ends names, such as a resolv.conf search domain, need not be one.
func ParseDomain(s string) (string, error) { return parse(s, false, false) }

// parse is ParseHost; host applies the host-name rule on '-'.
func parse(s string, wildcard, host bool) (string, error) {
	h := Host(s)
	rest := h
	if wildcard {
		rest = strings.TrimPrefix(h, "*.")
	}
	if rest == "" {
		return "", errEmpty
	}
	if len(h) > MaxNameLen {
		return "", fmt.Errorf("name is %d bytes long, longer than %d", len(h), MaxNameLen)
	}
	for l := range strings.SplitSeq(rest, ".") {
		if err := checkLabel(l, host); err != nil {
			return "", err
		}
	}
	return h, nil
}

func checkLabel(l string, host bool) error {
	switch {
	case l == "":
		return errors.New("empty label")
	case len(l) > MaxLabelLen:
		return fmt.Errorf("label %q is longer than %d bytes", l, MaxLabelLen)
	case host && (l[0] == '-' || l[len(l)-1] == '-'):
		return fmt.Errorf("label %q starts or ends with '-'", l)
	}
	// By rune, so that the error quotes the character the user wrote, not one of its bytes.
	for _, c := range l {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q holds %q; only letters, digits, '-' and '_' are allowed", l, c)
		}
	}
	return nil
}

// Canonical returns s lower-cased with a trailing dot, without validating it: the FQDN
// spelling of a name that is already known to be well formed (a model host, a parsed qname).
func Canonical(s string) string {
	s = Lower(s)
	if strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// Host returns s lower-cased without its trailing dot: the model's spelling of a name.
func Host(s string) string { return strings.TrimSuffix(Lower(s), ".") }

// InDomain reports whether the lower-case FQDN name equals domain or is below it.
func InDomain(name, domain string) bool {
	if domain == "." {
		return true
	}
	return name == domain || (strings.HasSuffix(name, domain) && name[len(name)-len(domain)-1] == '.')
}

// Lower lower-cases the ASCII letters of s (RFC 4343) and returns s itself, without
// allocating, when it has none.
func Lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = LowerByte(b[j])
			}
			return string(b)
		}
	}
	return s
}

// LowerByte lower-cases one ASCII letter; every other byte is returned as it is.
func LowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// EqualFold reports whether a and b are the same name but for ASCII case (RFC 4343).
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if LowerByte(a[i]) != LowerByte(b[i]) {
			return false
		}
	}
	return true
}
