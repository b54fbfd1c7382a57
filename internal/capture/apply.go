package capture

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// Install applies r with backend b: afterwards exactly one copy of the rules is in place,
// whatever was there before, and nothing that other programs own has changed. Each family is
// one iptables-restore run (one transaction with the nf_tables flavour, one per table with
// the legacy one); with nftables the whole table is replaced in one transaction. A family
// without rules is cleared of an earlier install's, and the zero Rules clear everything.
// The addresses of a node agent are put on lo first, so that the agent can bind them as soon
// as the rules are there.
func Install(ctx context.Context, run Runner, b Backend, r Rules) error {
	if _, err := ParseBackend(string(b)); err != nil {
		return err
	}
	if err := addAddrs(ctx, run, r.addrs); err != nil {
		return err
	}
	return installRules(ctx, run, b, r)
}

// installRules makes the rules of backend b what r holds.
func installRules(ctx context.Context, run Runner, b Backend, r Rules) error {
	if b == NFTables {
		return nft(ctx, run, renderNFT(r))
	}
	for _, f := range families {
		if err := applyFamily(ctx, run, b.tools(f), r, f); err != nil {
			return err
		}
	}
	return nil
}

// Uninstall removes everything an Install with backend b added, and nothing else: every rule
// meshdns owns, whatever r holds, and the node addresses of r (which only the flags that built
// r can name). It succeeds when nothing is installed.
func Uninstall(ctx context.Context, run Runner, b Backend, r Rules) error {
	if _, err := ParseBackend(string(b)); err != nil {
		return err
	}
	err := installRules(ctx, run, b, Rules{})
	if b == NFTables && errors.Is(err, exec.ErrNotFound) {
		err = nil // without nft nothing can have been installed with it
	}
	if err != nil {
		return err
	}
	return removeAddrs(ctx, run, r.addrs)
}

// nft runs an nft script.
func nft(ctx context.Context, run Runner, script string) error {
	if _, err := run(ctx, script, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("applying table %s: %w", nftTable, err)
	}
	return nil
}

// applyFamily makes the tables of family f hold what r wants of them. A missing binary is no
// error when the family needs no rules: nothing can have been installed with it.
func applyFamily(ctx context.Context, run Runner, t xtables, r Rules, f family) error {
	var script strings.Builder
	for _, table := range iptTables {
		want := ownedByRules(r, f, table)
		have, err := readOwned(ctx, run, t, table)
		if err != nil {
			if len(want.chains) == 0 && errors.Is(err, exec.ErrNotFound) {
				continue
			}
			return fmt.Errorf("%s: %w", f, err)
		}
		script.WriteString(restoreTable(table, want, have))
	}
	if script.Len() == 0 {
		return nil
	}
	if _, err := run(ctx, script.String(), t.restore, "--noflush", xtablesWait); err != nil {
		return fmt.Errorf("applying %s rules: %w", f, err)
	}
	return nil
}

// readOwned reads what this package owns in one table.
func readOwned(ctx context.Context, run Runner, t xtables, table string) (owned, error) {
	out, err := run(ctx, "", t.save, "-t", table)
	if err != nil {
		return owned{}, fmt.Errorf("reading table %s: %w", table, err)
	}
	return parseSave(out), nil
}

// Verify compares the live rules of backend b with what Install(b, r) puts there. diff is ""
// when they match, else one line per difference ("missing: ...", "unexpected: ...",
// "out of order: ..."); err is only for rules that could not be read.
func Verify(ctx context.Context, run Runner, b Backend, r Rules) (diff string, err error) {
	if _, err := ParseBackend(string(b)); err != nil {
		return "", err
	}
	var diffs []string
	if b == NFTables {
		diffs, err = verifyNFT(ctx, run, r)
	} else {
		diffs, err = verifyIPT(ctx, run, b, r)
	}
	if err != nil {
		return "", err
	}
	addrs, err := diffAddrs(ctx, run, r.addrs)
	return strings.Join(append(diffs, addrs...), "\n"), err
}

func verifyIPT(ctx context.Context, run Runner, b Backend, r Rules) ([]string, error) {
	var diffs []string
	for _, f := range families {
		for _, table := range iptTables {
			want := ownedByRules(r, f, table)
			have, err := readOwned(ctx, run, b.tools(f), table)
			if err != nil {
				if len(want.chains) == 0 && errors.Is(err, exec.ErrNotFound) {
					continue
				}
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			diffs = append(diffs, diffOwned(f.String()+" "+table, want, have)...)
		}
	}
	return diffs, nil
}

// diffOwned describes how have differs from want in one table.
func diffOwned(where string, want, have owned) []string {
	var diffs []string
	for _, c := range want.chains {
		if !slices.Contains(have.chains, c) {
			diffs = append(diffs, "missing: "+where+": chain "+c)
		}
	}
	for _, c := range have.chains {
		if !slices.Contains(want.chains, c) {
			diffs = append(diffs, "unexpected: "+where+": chain "+c)
		}
	}
	for _, c := range union(sortedKeys(want.rules), sortedKeys(have.rules)) {
		diffs = append(diffs, diffLines(where, want.rules[c], have.rules[c])...)
	}
	return diffs
}

func verifyNFT(ctx context.Context, run Runner, r Rules) ([]string, error) {
	tables, err := run(ctx, "", "nft", "list", "tables")
	if err != nil {
		return nil, err
	}
	if !hasNFTTable(tables) {
		return []string{"missing: table " + nftTable}, nil
	}
	out, err := run(ctx, "", "nft", "list", "table", "inet", "meshdns")
	if err != nil {
		return nil, err
	}
	return diffNFT(parseNFT(renderNFT(r)), parseNFT(out)), nil
}

// hasNFTTable reports whether the output of `nft list tables` names the meshdns table.
func hasNFTTable(tables string) bool {
	return slices.Contains(strings.Split(tables, "\n"), "table "+nftTable)
}

// diffNFT describes how the chains have differ from want; a chain's header counts as its first
// line.
func diffNFT(want, have []nftChain) []string {
	find := func(cs []nftChain, name string) (nftChain, bool) {
		i := slices.IndexFunc(cs, func(c nftChain) bool { return c.name == name })
		if i < 0 {
			return nftChain{}, false
		}
		return cs[i], true
	}
	var diffs []string
	for _, w := range want {
		where := "table " + nftTable + " chain " + w.name
		h, ok := find(have, w.name)
		if !ok {
			diffs = append(diffs, "missing: "+where)
			continue
		}
		diffs = append(diffs, diffLines(where, append([]string{w.header}, w.rules...), append([]string{h.header}, h.rules...))...)
	}
	for _, h := range have {
		if _, ok := find(want, h.name); !ok {
			diffs = append(diffs, "unexpected: table "+nftTable+" chain "+h.name)
		}
	}
	return diffs
}

// diffLines lists the lines of want missing from have and those of have not in want, counting
// duplicates; when both hold the same lines in another order it says so, since order decides
// which rule applies.
func diffLines(where string, want, have []string) []string {
	var diffs []string
	left := slices.Clone(have)
	for _, w := range want {
		if i := slices.Index(left, w); i >= 0 {
			left = slices.Delete(left, i, i+1)
		} else {
			diffs = append(diffs, "missing: "+where+": "+w)
		}
	}
	for _, h := range left {
		diffs = append(diffs, "unexpected: "+where+": "+h)
	}
	if len(diffs) == 0 && !slices.Equal(want, have) {
		diffs = append(diffs, "out of order: "+where)
	}
	return diffs
}
