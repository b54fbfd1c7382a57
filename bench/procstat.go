package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cpuTime reads the CPU time (user + system, all threads) a process has used so far.
func cpuTime(pid int, clockTick time.Duration) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	ticks, err := parseStatTicks(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(ticks) * clockTick, nil
}

// parseStatTicks returns utime + stime (fields 14 and 15, in clock ticks) of a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may itself hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatTicks(stat string) (uint64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	fields := strings.Fields(stat[end+1:]) // fields[0] is field 3 (state)
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want more than %d", len(fields), stime)
	}
	var sum uint64
	for _, i := range []int{utime, stime} {
		v, err := strconv.ParseUint(fields[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", i+3, err)
		}
		sum += v
	}
	return sum, nil
}

// rssBytes reads a process's resident set size.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	rss, err := parseVmRSS(string(b))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return rss, nil
}

// parseVmRSS returns the VmRSS line of /proc/PID/status in bytes ("VmRSS:   1234 kB").
func parseVmRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// clockTick asks getconf for the length of a clock tick (CLK_TCK, usually 100 Hz).
func clockTick(ctx context.Context) (time.Duration, error) {
	out, err := runTool(ctx, "", nil, "getconf", "CLK_TCK")
	if err != nil {
		return 0, err
	}
	hz, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil || hz <= 0 {
		return 0, fmt.Errorf("getconf CLK_TCK: %q is not a positive number", strings.TrimSpace(out))
	}
	return time.Second / time.Duration(hz), nil
}

// cpuTimes is the busy, steal and total time of each CPU ("0", "1", ...) and of all
// ("all"), in clock ticks, from /proc/stat.
type cpuTimes map[string]struct{ busy, steal, total uint64 }

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, err
	}
	return parseCPUTimes(string(b))
}

// parseCPUTimes reads the "cpu[N] user nice system idle iowait irq softirq steal guest ..."
// lines of /proc/stat. Busy is user, nice, system, irq and softirq (loopback packets are
// processed there); total adds idle, iowait and steal (guest time is already part of user).
func parseCPUTimes(stat string) (cpuTimes, error) {
	out := cpuTimes{}
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.HasPrefix(f[0], "cpu") {
			continue
		}
		var v struct{ busy, steal, total uint64 }
		for i, s := range f[1:9] {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/stat %s: %w", f[0], err)
			}
			v.total += n
			switch i {
			case 3, 4: // idle, iowait
			case 7:
				v.steal += n
			default:
				v.busy += n
			}
		}
		out[cmp.Or(strings.TrimPrefix(f[0], "cpu"), "all")] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cpu lines in /proc/stat")
	}
	return out, nil
}

// busyPercent and stealPercent are shares of CPU cpu's time between two readings.
func busyPercent(before, after cpuTimes, cpu string) float64 {
	return share(after[cpu].busy-before[cpu].busy, after[cpu].total-before[cpu].total)
}

func stealPercent(before, after cpuTimes, cpu string) float64 {
	return share(after[cpu].steal-before[cpu].steal, after[cpu].total-before[cpu].total)
}

func share(part, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(part) / float64(total)
}

// udpRcvbufErrors is the system's count of UDP datagrams dropped because a socket's receive
// buffer was full (a server that falls behind, or dnsperf).
func udpRcvbufErrors() (uint64, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	return parseUDPRcvbufErrors(string(b))
}

// parseUDPRcvbufErrors reads RcvbufErrors from the "Udp:" header and value lines of
// /proc/net/snmp.
func parseUDPRcvbufErrors(snmp string) (uint64, error) {
	var header []string
	for _, line := range strings.Split(snmp, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		if i := slices.Index(header, "RcvbufErrors"); i > 0 && i < len(f) {
			return strconv.ParseUint(f[i], 10, 64)
		}
		break
	}
	return 0, fmt.Errorf("/proc/net/snmp: no Udp RcvbufErrors")
}
