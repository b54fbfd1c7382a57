package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the numbers come from.
type machine struct {
	cpu, memory, kernel string
	cpus                int
	versions            []string // Go, CoreDNS, dnsperf, dnsmasq
}

func describeMachine(ctx context.Context, t tools) machine {
	m := machine{
		cpu:    procField("/proc/cpuinfo", "model name"),
		memory: gibibytes(procField("/proc/meminfo", "MemTotal")),
		kernel: strings.TrimSpace(readOr("/proc/sys/kernel/osrelease", "unknown")),
		cpus:   runtime.NumCPU(),
	}
	tools := [][]string{{"go", "version"}, {t.coredns, "-version"}, {"dnsperf", "-h"}, {t.dnsmasq, "--version"}}
	for _, argv := range tools {
		m.versions = append(m.versions, versionLine(ctx, argv...))
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	for _, line := range strings.Split(readOr(path, ""), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readOr(path, fallback string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fallback
	}
	return string(b)
}

// versionLine is the first line of a tool's output that names its version.
func versionLine(ctx context.Context, argv ...string) string {
	out, _ := runTool(ctx, "", nil, argv...) // dnsperf -h exits 1 but prints its version
	for _, line := range strings.Split(out, "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "version") || strings.HasPrefix(l, "coredns-") {
			line, _, _ = strings.Cut(strings.TrimSpace(line), "  ") // dnsmasq: "...2.90  Copyright ..."
			return fmt.Sprintf("%s: %s", filepath.Base(argv[0]), line)
		}
	}
	return argv[0] + ": version unknown"
}

// gibibytes turns /proc/meminfo's "24684096 kB" into "23.5 GiB".
func gibibytes(kB string) string {
	n, err := strconv.ParseFloat(strings.TrimSuffix(kB, " kB"), 64)
	if err != nil {
		return kB
	}
	return fmt.Sprintf("%.1f GiB", n/(1<<20))
}
