package cache_test

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/miekg/dns"
)

// floodRecords is how many records each flood reply carries: 170 A records of a 31-byte
// owner make a 7.7 KB reply, within the 8 KiB cache.MaxEntryBytes.
const floodRecords = 170

// floodReply is the i-th reply of the large-answer flood, as the cache gets it from the
// forwarder (packed and unpacked, so every record owns its strings as after a real exchange):
// positive, 170 A records; negative, NXDOMAIN with an SOA and 170 A records in the
// additional section.
func floodReply(tb testing.TB, i int, negative bool) (req, resp *dns.Msg) {
	tb.Helper()
	kind := "p"
	if negative {
		kind = "n"
	}
	qname := fmt.Sprintf("%s%07d.floods.cachetest.org.", kind, i)
	req = query(qname, A)
	m := new(dns.Msg)
	m.SetRcode(req, NOERROR)
	section := &m.Answer
	if negative {
		m.Rcode = NXDOMAIN
		m.Ns = []dns.RR{mustRR(tb, soa)}
		section = &m.Extra
	}
	for j := range floodRecords {
		*section = append(*section, &dns.A{
			Hdr: dns.RR_Header{Name: qname, Rrtype: A, Class: dns.ClassINET, Ttl: 3600},
			A:   net.IPv4(198, 51, byte(j), byte(i)).To4()})
	}
	wire, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	resp = new(dns.Msg)
	if err := resp.Unpack(wire); err != nil {
		tb.Fatal(err)
	}
	return req, resp
}

// flood puts n positive and n negative flood replies into c.
func flood(tb testing.TB, c *cache.Cache, n int) {
	tb.Helper()
	for i := range n {
		for _, negative := range []bool{false, true} {
			req, resp := floodReply(tb, i, negative)
			c.Put(req, resp)
		}
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestCacheBoundedByBytes fills the cache with the large-answer flood (7.7 KB answers of 170
// A records; NXDOMAIN with a large additional section), ten times what MaxBytes allows, and
// checks the heap it holds stays under MaxBytes plus the estimate's stated error.
func TestCacheBoundedByBytes(t *testing.T) {
	const maxBytes = 2 << 20
	before := heapInUse()
	c := cache.New(cache.Options{MaxBytes: maxBytes})
	flood(t, c, 600)
	held := int64(heapInUse()) - int64(before)
	pos, neg := c.Len()
	t.Logf("heap held %d KiB for %d+%d entries, bound %d KiB", held>>10, pos, neg, maxBytes>>10)
	if limit := int64(maxBytes * 5 / 4); held > limit {
		t.Errorf("cache holds %d KiB of heap, more than MaxBytes %d KiB + 25%%", held>>10, maxBytes>>10)
	}
	if pos == 0 || neg == 0 {
		t.Errorf("Len = %d, %d; the flood must leave entries in both stores", pos, neg)
	}
	runtime.KeepAlive(c)
}

// BenchmarkCacheFlood measures the memory the large-answer flood takes with the defaults
// (DefaultSize entries per store, DefaultMaxBytes): 10,000 positive and 10,000 negative
// entries of 7.7 KB replies. Run it once:
//
//	go test -run '^$' -bench BenchmarkCacheFlood -benchtime 1x ./internal/cache
//
// heap-MiB is the live heap the cache holds after a collection, rss-MiB the process's
// resident memory after returning free memory to the OS, peak-rss-MiB its high-water mark.
func BenchmarkCacheFlood(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		c := cache.New(cache.Options{})
		flood(b, c, 10000)
		held := heapInUse() - before
		debug.FreeOSMemory()
		pos, neg := c.Len()
		b.ReportMetric(float64(held)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(pos+neg), "entries")
		b.ReportMetric(procStatus(b, "VmRSS")/1024, "rss-MiB")
		b.ReportMetric(procStatus(b, "VmHWM")/1024, "peak-rss-MiB")
		runtime.KeepAlive(c)
	}
}

// procStatus reads a "kB" field of /proc/self/status.
func procStatus(tb testing.TB, field string) float64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb
		}
	}
	tb.Fatalf("no %s in /proc/self/status", field)
	return 0
}
