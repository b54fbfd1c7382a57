package resolvconf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/safefile"
)

const (
	// DefaultNdots is glibc's ndots when resolv.conf sets none.
	DefaultNdots = 1
	// MaxNdots is glibc's cap (RES_MAXNDOTS); larger values are clamped to it.
	MaxNdots = 15
	// MaxFileBytes bounds what is read of resolv.conf; real ones hold a few hundred bytes.
	MaxFileBytes = 1 << 20
	// port is where resolv.conf nameservers listen; the file has no syntax for another.
	port = 53
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

// ParseFile parses the resolv.conf at path. Errors name the path. What is not a regular file
// (a FIFO, a device) or is larger than MaxFileBytes is refused without waiting or reading it,
// except os.DevNull, the usual way to say "no resolv.conf", which reads as an empty file.
func ParseFile(path string) (Config, error) {
	if real, err := filepath.EvalSymlinks(path); err == nil && real == os.DevNull {
		return Parse(bytes.NewReader(nil))
	}
	b, err := safefile.ReadRegular(path, MaxFileBytes)
	if errors.Is(err, safefile.ErrNotRegular) || errors.Is(err, safefile.ErrTooLarge) {
		return Config{}, fmt.Errorf("resolv.conf %w", err) // it names the path already
	}
	if err != nil {
		return Config{}, fmt.Errorf("resolv.conf %s: %w", path, err)
	}
	c, err := Parse(bytes.NewReader(b))
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

// normalizeDomain returns d lower-case with the trailing dot when dnsname.ParseDomain accepts
// it (host-style labels, where a search domain may start or end a label with '-'). The root
// is rejected: a search domain of "." would make every name a search-list candidate.
func normalizeDomain(d string) (string, bool) {
	h, err := dnsname.ParseDomain(d)
	if err != nil {
		return "", false
	}
	return dnsname.Canonical(h), true
}
