package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dnsperfTimeout is dnsperf's -t: a query unanswered this long counts as lost.
const dnsperfTimeout = 2 * time.Second

// load is one dnsperf run.
type load struct {
	server      netip.AddrPort
	queries     string // dnsperf data file
	duration    time.Duration
	clients     int    // -c
	outstanding int    // -q
	rate        int    // -Q; 0: as fast as the server answers
	cpus        string // taskset CPU list for dnsperf; "" = any
}

// loadResult is what dnsperf reported, plus its own CPU time.
type loadResult struct {
	sent, completed, lost int64
	qps                   float64
	runTime               time.Duration // dnsperf's "Run time": until the last query was sent
	wall                  time.Duration // dnsperf's lifetime: also waits for late answers
	avgLatency            time.Duration // dnsperf's average over answered queries
	p99Latency            time.Duration // from -v's per-query lines; a lost query counts as dnsperfTimeout
	rcodes                string        // dnsperf's "Response codes" line
	dnsperfCPU            time.Duration // user + system time of dnsperf
}

func (l load) args() []string {
	args := []string{"dnsperf", "-s", l.server.Addr().String(), "-p", strconv.Itoa(int(l.server.Port())),
		"-d", l.queries, "-l", strconv.FormatFloat(l.duration.Seconds(), 'f', -1, 64),
		"-c", strconv.Itoa(l.clients), "-q", strconv.Itoa(l.outstanding),
		"-t", strconv.Itoa(int(dnsperfTimeout.Seconds())), "-v"}
	if l.rate > 0 {
		args = append(args, "-Q", strconv.Itoa(l.rate))
	}
	if l.cpus != "" {
		args = append([]string{"taskset", "-c", l.cpus}, args...)
	}
	return args
}

// runDnsperf runs dnsperf with its (large, per-query) standard output in outPath and parses it.
func runDnsperf(ctx context.Context, l load, outPath string) (loadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, l.duration+dnsperfTimeout+30*time.Second)
	defer cancel()
	out, err := os.Create(outPath)
	if err != nil {
		return loadResult{}, err
	}
	defer os.Remove(outPath)
	defer out.Close()
	argv := l.args()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Run(); err != nil {
		return loadResult{}, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, lastLines(stderr.String(), 10))
	}
	wall := time.Since(started)
	if _, err := out.Seek(0, io.SeekStart); err != nil {
		return loadResult{}, err
	}
	res, err := parseDnsperf(bufio.NewReaderSize(out, 1<<20))
	if err != nil {
		return loadResult{}, fmt.Errorf("dnsperf output %s: %w", outPath, err)
	}
	res.wall = wall
	res.dnsperfCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// parseDnsperf reads dnsperf 2.x output run with -v: one "> RCODE qname qtype latency" line
// per answered query ("> T qname qtype" for a timeout), then the statistics block.
func parseDnsperf(r io.Reader) (loadResult, error) {
	var res loadResult
	var latencies []float64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "> "); ok {
			if lat, ok := verboseLatency(rest); ok {
				latencies = append(latencies, lat)
			}
			continue
		}
		if err := res.parseStatistic(line); err != nil {
			return loadResult{}, err
		}
	}
	if err := sc.Err(); err != nil {
		return loadResult{}, err
	}
	if res.runTime == 0 {
		return loadResult{}, fmt.Errorf("no statistics block (%d per-query lines)", len(latencies))
	}
	for range res.lost {
		latencies = append(latencies, dnsperfTimeout.Seconds())
	}
	res.p99Latency = percentile(latencies, 0.99)
	return res, nil
}

// verboseLatency returns the latency of a per-query line, if it has one (timeouts do not).
func verboseLatency(rest string) (float64, bool) {
	f := strings.Fields(rest)
	if len(f) < 4 {
		return 0, false
	}
	lat, err := strconv.ParseFloat(f[len(f)-1], 64)
	return lat, err == nil
}

// parseStatistic fills in the field a line of the statistics block names, if any.
func (res *loadResult) parseStatistic(line string) error {
	key, value, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok {
		return nil
	}
	value = strings.TrimSpace(value)
	number := value // the value's first word: "105279 (100.00%)", "0.000840 (min ...)"
	if f := strings.Fields(value); len(f) > 0 {
		number = f[0]
	}
	var err error
	switch key {
	case "Queries sent":
		res.sent, err = strconv.ParseInt(number, 10, 64)
	case "Queries completed":
		res.completed, err = strconv.ParseInt(number, 10, 64)
	case "Queries lost":
		res.lost, err = strconv.ParseInt(number, 10, 64)
	case "Queries per second":
		res.qps, err = strconv.ParseFloat(number, 64)
	case "Run time (s)":
		res.runTime, err = parseSeconds(number)
	case "Average Latency (s)":
		res.avgLatency, err = parseSeconds(number)
	case "Response codes":
		res.rcodes = value
	}
	if err != nil {
		return fmt.Errorf("%q: %w", line, err)
	}
	return nil
}

func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	return time.Duration(math.Round(f * float64(time.Second))), err
}

// percentile returns the nearest-rank percentile p (0..1) of seconds, as a duration.
func percentile(seconds []float64, p float64) time.Duration {
	if len(seconds) == 0 {
		return 0
	}
	slices.Sort(seconds)
	i := int(math.Ceil(p*float64(len(seconds)))) - 1
	return time.Duration(math.Round(seconds[max(0, i)] * float64(time.Second)))
}
