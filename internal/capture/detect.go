package capture

import (
	"context"
	"errors"
	"os/exec"
	"strings"
)

// Detect returns the backend an operator of this host would expect meshdns to use:
//
//  1. the backend that already holds meshdns rules, so that uninstall and verify find what an
//     install with an explicit --backend left;
//  2. iptables-legacy when it holds any rule (an older kube-proxy or Docker uses it, and rules
//     of both flavours on one host are evaluated in an order nobody expects);
//  3. iptables when the command exists (nf_tables flavour, or legacy without rules);
//  4. nftables when nft exists.
//
// Commands that fail only leave a question unanswered; it is an error when neither iptables
// nor nft is installed.
func Detect(ctx context.Context, run Runner) (Backend, error) {
	legacy := save(ctx, run, "iptables-legacy-save") + save(ctx, run, "ip6tables-legacy-save")
	tables, _ := run(ctx, "", "nft", "list", "tables")
	switch {
	case strings.Contains(legacy, ":"+chainPrefix):
		return IPTablesLegacy, nil
	case hasNFTTable(tables):
		return NFTables, nil
	case strings.Contains(save(ctx, run, "iptables-save")+save(ctx, run, "ip6tables-save"), ":"+chainPrefix):
		return IPTables, nil
	case hasRules(legacy):
		return IPTablesLegacy, nil
	case exists(ctx, run, "iptables", "-V"):
		return IPTables, nil
	case exists(ctx, run, "nft", "-v"):
		return NFTables, nil
	}
	return "", errors.New("no netfilter tools: install the Debian package iptables or nftables")
}

// save returns the output of an iptables-save command for all tables it knows, "" when it
// fails. Without -t, the legacy flavour lists only tables already in use and loads no module.
func save(ctx context.Context, run Runner, name string) string {
	out, err := run(ctx, "", name)
	if err != nil {
		return ""
	}
	return out
}

// hasRules reports whether iptables-save output holds any rule.
func hasRules(out string) bool {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "-A ") {
			return true
		}
	}
	return false
}

// exists reports whether the command name can be run.
func exists(ctx context.Context, run Runner, name string, args ...string) bool {
	_, err := run(ctx, "", name, args...)
	return !errors.Is(err, exec.ErrNotFound)
}
