package resolvconf

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

const (
	// DefaultNdots is glibc's ndots when resolv.conf sets none.
	DefaultNdots = 1
	// MaxNdots is glibc's cap (RES_MAXNDOTS); larger values are clamped to it.
	MaxNdots = 15
	// port is where resolv.conf nameservers listen; the file has no syntax for another.
	port = 53
	// maxNameLen is the longest presentation name without its trailing dot (RFC 1035).
	maxNameLen  = 253
	maxLabelLen = 63
)

// Config is what meshdns takes from resolv.conf.
type Config struct {
	// Nameservers in file order, port 53. IPv6 link-local addresses keep their zone.
	Nameservers []netip.AddrPort
	// Search is the search list: lowercase, fully qualified ("prod.svc.cluster.local.").
	Search []string
	// Ndots from "options ndots:N", DefaultNdots if unset, at most MaxNdots.
	Ndots int
}

// ParseFile parses the resolv.conf at path. Errors name the path.
func ParseFile(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("resolv.conf %s: %w", path, err)
	}
	defer f.Close()
	c, err := Parse(f)
	if err != nil {
		return Config{}, fmt.Errorf("resolv.conf %s: %w", path, err)
	}
	return c, nil
}

// Parse reads resolv.conf syntax from r. Unknown keywords and malformed values are skipped, as
// glibc does; only a read error (including a line longer than 64 KiB) is returned.
func Parse(r io.Reader) (Config, error) {
	c := Config{Ndots: DefaultNdots}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		c.parseLine(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return Config{}, fmt.Errorf("reading: %w", err)
	}
	return c, nil
}

func (c *Config) parseLine(line string) {
	if i := strings.IndexAny(line, "#;"); i >= 0 {
		line = line[:i]
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return
	}
	switch fields[0] {
	case "nameserver":
		if ap, ok := parseNameserver(fields[1]); ok {
			c.Nameservers = append(c.Nameservers, ap)
		}
	case "domain":
		c.Search = parseSearch(fields[1:2])
	case "search":
		c.Search = parseSearch(fields[1:])
	case "options":
		for _, opt := range fields[1:] {
			c.parseOption(opt)
		}
	}
}

func parseNameserver(s string) (netip.AddrPort, bool) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(addr, port), true
}

// parseSearch returns the valid domains of a search list; the root and malformed names are
// dropped. The result is nil when none is valid, so the line still replaces an earlier one.
func parseSearch(domains []string) []string {
	var out []string
	for _, d := range domains {
		if fqdn, ok := normalizeDomain(d); ok {
			out = append(out, fqdn)
		}
	}
	return out
}

func (c *Config) parseOption(opt string) {
	v, ok := strings.CutPrefix(opt, "ndots:")
	if !ok {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return
	}
	c.Ndots = min(max(n, 0), MaxNdots)
}

// normalizeDomain lowercases d and adds the trailing dot. It accepts host-name style labels
// (letters, digits, '-', '_') of 1 to 63 bytes and rejects the root.
func normalizeDomain(d string) (string, bool) {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if d == "" || len(d) > maxNameLen {
		return "", false
	}
	for label := range strings.SplitSeq(d, ".") {
		if !validLabel(label) {
			return "", false
		}
	}
	return d + ".", true
}

func validLabel(label string) bool {
	if label == "" || len(label) > maxLabelLen {
		return false
	}
	for i := 0; i < len(label); i++ {
		b := label[i]
		if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}
