package cache_test

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// run applies ops to c: "+a" stores a positive answer for a.example.com., "-a" a negative
// one, "!a" a SERVFAIL, "?a" looks a up, ">90s" moves the clock.
func run(t *testing.T, c *cache.Cache, clk *testutil.Clock, ops []string) {
	t.Helper()
	for _, op := range ops {
		if op[0] == '>' {
			d, err := time.ParseDuration(op[1:])
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(d)
			continue
		}
		name := op[1:] + ".example.com."
		req := query(name, A)
		switch op[0] {
		case '+':
			c.Put(req, reply(t, req, NOERROR, []string{name + " 60 IN A 192.0.2.1"}, nil))
		case '-':
			c.Put(req, reply(t, req, NXDOMAIN, nil, []string{soa}))
		case '!':
			c.Put(req, reply(t, req, SERVFAIL, nil, nil))
		case '?':
			c.Get(req)
		default:
			t.Fatalf("bad op %q", op)
		}
	}
}

func TestEviction(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		ops       []string
		present   []string
		wantLen   [2]int
		evictions float64
	}{
		{name: "within size", size: 2, ops: []string{"+a", "+b"}, present: []string{"a", "b"}, wantLen: [2]int{2, 0}},
		{name: "least recently stored goes", size: 2, ops: []string{"+a", "+b", "+c"},
			present: []string{"b", "c"}, wantLen: [2]int{2, 0}, evictions: 1},
		{name: "Get makes recent", size: 2, ops: []string{"+a", "+b", "?a", "+c"},
			present: []string{"a", "c"}, wantLen: [2]int{2, 0}, evictions: 1},
		{name: "Put again makes recent", size: 2, ops: []string{"+a", "+b", "+a", "+c"},
			present: []string{"a", "c"}, wantLen: [2]int{2, 0}, evictions: 1},
		{name: "stores bounded separately", size: 2, ops: []string{"+a", "+b", "-c", "-d"},
			present: []string{"a", "b", "c", "d"}, wantLen: [2]int{2, 2}},
		{name: "negative store evicts", size: 2, ops: []string{"-a", "-b", "-c"},
			present: []string{"b", "c"}, wantLen: [2]int{0, 2}, evictions: 1},
		{name: "servfail counts as negative", size: 2, ops: []string{"-a", "-b", "!c"},
			present: []string{"b", "c"}, wantLen: [2]int{0, 2}, evictions: 1},
		{name: "positive replaces negative", size: 2, ops: []string{"-a", "+a"},
			present: []string{"a"}, wantLen: [2]int{1, 0}},
		{name: "negative replaces positive", size: 2, ops: []string{"+a", "-a"},
			present: []string{"a"}, wantLen: [2]int{0, 1}},
		{name: "positive replaces servfail", size: 2, ops: []string{"!a", "+a"},
			present: []string{"a"}, wantLen: [2]int{1, 0}},
		{name: "size one", size: 1, ops: []string{"+a", "+b", "-c", "-d"},
			present: []string{"b", "d"}, wantLen: [2]int{1, 1}, evictions: 2},
		{name: "expired entry dropped when touched", size: 2, ops: []string{"+a", "+b", ">61m", "?a"},
			wantLen: [2]int{1, 0}},
		{name: "expired entry replaced, not evicted", size: 1, ops: []string{"+a", ">61m", "+a"},
			present: []string{"a"}, wantLen: [2]int{1, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			reg := prometheus.NewRegistry()
			c := cache.New(cache.Options{Size: tc.size, ServeStale: time.Minute, Now: clk.Now,
				Metrics: cache.NewMetrics(reg)})
			run(t, c, clk, tc.ops)
			if pos, neg := c.Len(); [2]int{pos, neg} != tc.wantLen {
				t.Errorf("Len = %d, %d; want %v", pos, neg, tc.wantLen)
			}
			if got := metric(t, reg, "meshdns_cache_evictions_total", ""); got != tc.evictions {
				t.Errorf("evictions = %v, want %v", got, tc.evictions)
			}
			var present []string
			for _, n := range []string{"a", "b", "c", "d"} {
				if _, st, _ := c.Get(query(n+".example.com.", A)); st != cache.Miss {
					present = append(present, n)
				}
			}
			if !slices.Equal(present, tc.present) {
				t.Errorf("cached %v, want %v", present, tc.present)
			}
		})
	}
}

func TestPrefetch(t *testing.T) {
	type step struct {
		at    time.Duration // since the first Put
		put   bool          // store an answer again instead of Get
		rcode int           // of the answer stored again
		want  bool          // prefetch returned by Get
	}
	s := time.Second
	tests := []struct {
		name  string
		ttl   int
		steps []step
	}{
		{name: "third hit in the last tenth", ttl: 100, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 90 * s, want: true}}},
		{name: "not before the last tenth", ttl: 100, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 90*s - 1}}},
		{name: "only once", ttl: 100, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 91 * s, want: true},
			{at: 92 * s}, {at: 99 * s}}},
		{name: "early hits count", ttl: 100, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 3 * s}, {at: 95 * s, want: true}}},
		{name: "needs three hits", ttl: 100, steps: []step{{at: 91 * s}, {at: 92 * s}, {at: 93 * s, want: true}}},
		{name: "short TTL never", ttl: 9, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 8*s + s/2}}},
		{name: "TTL of 10s qualifies", ttl: 10, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 9 * s, want: true}}},
		{name: "stale never", ttl: 100, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 101 * s}}},
		{name: "Put re-arms", ttl: 100, steps: []step{{at: 1 * s}, {at: 2 * s}, {at: 91 * s, want: true},
			{at: 92 * s}, {at: 93 * s, put: true}, {at: 94 * s}, {at: 95 * s}, {at: 182 * s}, {at: 184 * s, want: true},
			{at: 185 * s}}},
		{name: "ignored SERVFAIL does not re-arm", ttl: 100, steps: []step{{at: 1 * s}, {at: 2 * s},
			{at: 91 * s, want: true}, {at: 92 * s, put: true, rcode: SERVFAIL}, {at: 93 * s}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := testutil.NewClock()
			start := clk.Now()
			c := cache.New(cache.Options{ServeStale: time.Hour, Now: clk.Now})
			req := query("www.example.com.", A)
			answer := []string{"www.example.com. " + strconv.Itoa(tc.ttl) + " IN A 192.0.2.1"}
			c.Put(req, reply(t, req, NOERROR, answer, nil))
			for i, st := range tc.steps {
				clk.Advance(start.Add(st.at).Sub(clk.Now()))
				if st.put {
					c.Put(req, reply(t, req, st.rcode, answer, nil))
					continue
				}
				if _, _, got := c.Get(req); got != st.want {
					t.Errorf("step %d (Get at %v): prefetch = %v, want %v", i, st.at, got, st.want)
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	clk := testutil.NewClock()
	reg := prometheus.NewRegistry()
	c := cache.New(cache.Options{Size: 1, ServeStale: time.Hour, Now: clk.Now, Metrics: cache.NewMetrics(reg)})
	run(t, c, clk, []string{"+a", "-b", "?a", "?a", "?b", "?c", ">2m", "?a", "+c"})
	c.Get(new(dns.Msg)) // not a query: a miss, whatever it asks
	want := []struct {
		name, label string
		value       float64
	}{
		{"meshdns_cache_hits_total", "", 3},
		{"meshdns_cache_misses_total", "", 2},
		{"meshdns_cache_stale_total", "", 1},
		{"meshdns_cache_evictions_total", "", 1},
		{"meshdns_cache_entries", "positive", 1},
		{"meshdns_cache_entries", "negative", 1},
	}
	for _, w := range want {
		if got := metric(t, reg, w.name, w.label); got != w.value {
			t.Errorf("%s{%s} = %v, want %v", w.name, w.label, got, w.value)
		}
	}
}

func TestConcurrent(t *testing.T) {
	clk := testutil.NewClock()
	c := cache.New(cache.Options{Size: 8, ServeStale: time.Minute, Now: clk.Now,
		Metrics: cache.NewMetrics(prometheus.NewRegistry())})
	names := []string{"a.example.com.", "B.example.com.", "c.example.com.", "d.example.com.", "e.example.com."}
	// Built up front: only the test goroutine may call t.Fatal. Put only reads them.
	positive, negative := map[string]*dns.Msg{}, map[string]*dns.Msg{}
	for _, n := range names {
		req := query(n, A)
		positive[n] = reply(t, req, NOERROR, []string{n + " 30 IN A 192.0.2.1"}, nil)
		negative[n] = reply(t, req, NXDOMAIN, nil, []string{soa})
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 2000 {
				name := names[rng.IntN(len(names))]
				req := query(name, A)
				switch rng.IntN(10) {
				case 0:
					clk.Advance(time.Duration(rng.IntN(20)) * time.Second)
				case 1, 2, 3:
					c.Put(req, positive[name])
				case 4:
					c.Put(req, negative[name])
				case 5:
					c.Len()
				default:
					if resp, _, _ := c.Get(req); resp != nil {
						resp.Answer = nil // served copies are the caller's to change
					}
				}
			}
		})
	}
	wg.Wait()
	if pos, neg := c.Len(); pos > 8 || neg > 8 {
		t.Errorf("Len = %d, %d; want at most 8 each", pos, neg)
	}
}

func BenchmarkGetHit(b *testing.B) {
	c := cache.New(cache.Options{})
	req := query("www.example.com.", A)
	c.Put(req, reply(b, req, NOERROR, []string{www, "www.example.com. 60 IN A 192.0.2.2"}, nil))
	b.ReportAllocs()
	for b.Loop() {
		if _, st, _ := c.Get(req); st != cache.Hit {
			b.Fatal(st)
		}
	}
}

// TestGetHitAllocs guards the hit path: the message, its question and answer slices, and two
// allocations per A record copied (the record and its address).
func TestGetHitAllocs(t *testing.T) {
	c := cache.New(cache.Options{})
	req := query("www.example.com.", A)
	c.Put(req, reply(t, req, NOERROR, []string{www, "www.example.com. 60 IN A 192.0.2.2"}, nil))
	const budget = 3 + 2*2
	if got := testing.AllocsPerRun(100, func() { c.Get(req) }); got > budget {
		t.Errorf("Get allocates %v times per hit, budget %d", got, budget)
	}
}
