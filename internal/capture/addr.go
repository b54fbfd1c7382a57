package capture

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// renderAddrs is the `ip -batch -` input that adds addrs to lo; replace, unlike add, succeeds
// when an address is there already.
func renderAddrs(addrs []netip.Addr) string {
	var b strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&b, "address replace %s dev %s\n", hostPrefix(a), addrLink)
	}
	return b.String()
}

// addAddrs puts addrs on lo.
func addAddrs(ctx context.Context, run Runner, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	if _, err := run(ctx, renderAddrs(addrs), "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("adding the node addresses to %s: %w", addrLink, err)
	}
	return nil
}

// removeAddrs takes those of addrs that lo holds off it.
func removeAddrs(ctx context.Context, run Runner, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	have, err := linkAddrs(ctx, run)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, a := range addrs {
		if slices.Contains(have, hostPrefix(a)) {
			fmt.Fprintf(&b, "address delete %s dev %s\n", hostPrefix(a), addrLink)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := run(ctx, b.String(), "ip", "-batch", "-"); err != nil {
		return fmt.Errorf("removing the node addresses from %s: %w", addrLink, err)
	}
	return nil
}

// diffAddrs lists the addresses of addrs missing from lo.
func diffAddrs(ctx context.Context, run Runner, addrs []netip.Addr) ([]string, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	have, err := linkAddrs(ctx, run)
	if err != nil {
		return nil, err
	}
	var diffs []string
	for _, a := range addrs {
		if !slices.Contains(have, hostPrefix(a)) {
			diffs = append(diffs, "missing: address "+hostPrefix(a)+" on "+addrLink)
		}
	}
	return diffs, nil
}

// linkAddrs returns the addresses of lo as ip lists them (10.96.0.10/32).
func linkAddrs(ctx context.Context, run Runner) ([]string, error) {
	out, err := run(ctx, "", "ip", "-oneline", "address", "show", "dev", addrLink)
	if err != nil {
		return nil, fmt.Errorf("reading the addresses of %s: %w", addrLink, err)
	}
	return parseAddrs(out), nil
}

// parseAddrs extracts the addresses from `ip -oneline address show` output, whose lines read
// "1: lo    inet 127.0.0.1/8 scope host lo ...".
func parseAddrs(out string) []string {
	var addrs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				addrs = append(addrs, f[i+1])
				break
			}
		}
	}
	return addrs
}
