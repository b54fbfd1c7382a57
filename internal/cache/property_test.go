package cache_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/dnsname"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

var propertySeed = flag.Uint64("property.seed", 0, "run TestProperty with only this seed")

const propertySteps = 10000

// TestProperty drives the cache with seeded random Puts, Gets and clock moves and checks every
// answer against the rules. With exact set, stores never fill, so a model predicts each Get.
func TestProperty(t *testing.T) {
	configs := []struct {
		name  string
		opts  cache.Options
		exact bool
	}{
		{name: "serve-stale 1h", opts: cache.Options{ServeStale: time.Hour}, exact: true},
		{name: "clamped, no serve-stale", opts: cache.Options{MinTTL: 5 * time.Second, MaxTTL: 90 * time.Second}, exact: true},
		{name: "short serve-stale", opts: cache.Options{MaxTTL: 2 * time.Minute, ServeStale: 20 * time.Second}, exact: true},
		{name: "tiny stores", opts: cache.Options{Size: 3, ServeStale: 2 * time.Minute}},
	}
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	if *propertySeed != 0 {
		seeds = []uint64{*propertySeed}
	}
	for _, cfg := range configs {
		for _, seed := range seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", cfg.name, seed), func(t *testing.T) {
				w := newWorld(t, seed, cfg.opts, cfg.exact)
				for w.step = 0; w.step < propertySteps && !t.Failed(); w.step++ {
					w.act()
				}
				w.checkCoverage()
				if t.Failed() {
					t.Logf("reproduce: go test ./internal/cache/ -run 'TestProperty/%s' -property.seed=%d",
						strings.ReplaceAll(cfg.name, " ", "_"), seed)
				}
			})
		}
	}
}

type modelKey struct {
	qname       string
	qtype       uint16
	doBit, cdBt bool
}

// stored is what the test expects of one Put the cache should have kept.
type stored struct {
	key      modelKey
	at       time.Time
	ttl      time.Duration // entry lifetime
	rcode    int
	servfail bool
	hits     int
	fetched  bool // Get already asked for a prefetch
}

type world struct {
	t     *testing.T
	rng   *rand.Rand
	clk   *testutil.Clock
	c     *cache.Cache
	opts  cache.Options
	exact bool
	step  int
	seq   uint32
	puts  map[uint32]*stored   // by marker
	model map[modelKey]*stored // what each key holds, when exact
	seen  [3]int               // Get results by status
	fetch int                  // prefetches asked for
}

// checkCoverage fails a run that never reached the states it is meant to test.
func (w *world) checkCoverage() {
	w.t.Helper()
	w.t.Logf("gets: %d miss, %d hit, %d stale; %d prefetches", w.seen[cache.Miss], w.seen[cache.Hit], w.seen[cache.Stale], w.fetch)
	if w.seen[cache.Miss] == 0 || w.seen[cache.Hit] == 0 || (w.opts.ServeStale > 0) != (w.seen[cache.Stale] > 0) || w.fetch == 0 {
		w.t.Errorf("run too narrow: %v gets by status, %d prefetches", w.seen, w.fetch)
	}
}

func newWorld(t *testing.T, seed uint64, opts cache.Options, exact bool) *world {
	clk := testutil.NewClock()
	opts.Now = clk.Now
	return &world{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clk: clk,
		c: cache.New(opts), opts: opts, exact: exact,
		puts: map[uint32]*stored{}, model: map[modelKey]*stored{}}
}

func (w *world) fail(format string, args ...any) {
	w.t.Helper()
	w.t.Errorf("step %d: "+format, append([]any{w.step}, args...)...)
}

func (w *world) act() {
	switch n := w.rng.IntN(100); {
	case n < 25:
		w.put()
	case n < 35:
		w.advance()
	default:
		w.get()
	}
	pos, neg := w.c.Len()
	if size := w.size(); pos > size || neg > size {
		w.fail("Len = %d, %d; above Size %d", pos, neg, size)
	}
}

func (w *world) size() int {
	if w.opts.Size == 0 {
		return cache.DefaultSize
	}
	return w.opts.Size
}

func (w *world) advance() {
	var d time.Duration
	switch n := w.rng.IntN(100); {
	case n < 1:
		d = -time.Duration(w.rng.IntN(5000)) * time.Millisecond // a clock stepping back
	case n < 40:
		d = time.Duration(w.rng.IntN(2000)) * time.Millisecond
	case n < 70:
		d = time.Duration(w.rng.IntN(3)) * time.Second // whole seconds land exactly on expiries
	case n < 85:
		d = time.Duration(w.rng.IntN(30_000)) * time.Millisecond
	case n < 96:
		d = time.Duration(w.rng.IntN(600)) * time.Second
	default:
		d = time.Duration(w.rng.IntN(3*3600)) * time.Second
	}
	w.clk.Advance(d)
}

var propertyNames = []string{"www.example.com.", "api.example.com.", "example.org.", "db.example.net.", "x.y.example.io."}

// request asks for a random name in random case, with random DO and CD bits.
func (w *world) request() *dns.Msg {
	name := []byte(propertyNames[w.rng.IntN(len(propertyNames))])
	for i := range name {
		if w.rng.IntN(2) == 0 {
			name[i] = strings.ToUpper(string(name[i]))[0]
		}
	}
	qtype := A
	if w.rng.IntN(4) == 0 {
		qtype = AAAA
	}
	m := query(string(name), qtype)
	m.Id = uint16(w.rng.Uint32())
	if w.rng.IntN(8) == 0 {
		withDO(m)
	}
	m.CheckingDisabled = w.rng.IntN(8) == 0
	return m
}

func keyOf(req *dns.Msg) modelKey {
	q := req.Question[0]
	opt := req.IsEdns0()
	return modelKey{dnsname.Lower(q.Name), q.Qtype, opt != nil && opt.Do(), req.CheckingDisabled}
}

func (w *world) ttl() uint32 {
	switch n := w.rng.IntN(100); {
	case n < 5:
		return 0
	case n < 10:
		return 1<<31 + uint32(w.rng.IntN(100)) // RFC 2181: means 0
	case n < 40:
		return uint32(1 + w.rng.IntN(30))
	case n < 85:
		return uint32(30 + w.rng.IntN(600))
	default:
		return uint32(3000 + w.rng.IntN(6000))
	}
}

// rfcTTL is how a TTL reads under RFC 2181 §8.
func rfcTTL(ttl uint32) uint32 {
	if ttl > 1<<31-1 {
		return 0
	}
	return ttl
}

func (w *world) put() {
	req := w.request()
	w.seq++
	resp, want := w.response(req)
	now := w.clk.Now()
	w.c.Put(req, resp)
	if want == nil {
		return
	}
	want.key, want.at = keyOf(req), now
	w.puts[w.seq] = want
	old := w.model[want.key]
	if want.servfail && old != nil && !old.servfail && now.Sub(old.at) < old.ttl+max(w.opts.ServeStale, 0) {
		return // the cache keeps the answer serve-stale needs
	}
	w.model[want.key] = want
}

// response builds a random upstream reply to req carrying marker w.seq, and what the cache
// should make of it (nil: not cached).
func (w *world) response(req *dns.Msg) (*dns.Msg, *stored) {
	resp := new(dns.Msg)
	resp.SetReply(req)
	switch n := w.rng.IntN(100); {
	case n < 45:
		return resp, w.positive(req, resp)
	case n < 65:
		return resp, w.negative(req, resp)
	case n < 80:
		resp.Rcode = SERVFAIL
		resp.Ns = []dns.RR{w.soa(5, 5)}
		return resp, &stored{rcode: SERVFAIL, servfail: true, ttl: cache.ServfailTTL}
	case n < 88:
		resp.Rcode = []int{REFUSED, dns.RcodeNotImplemented, dns.RcodeFormatError}[w.rng.IntN(3)]
		resp.Ns = []dns.RR{w.soa(60, 60)}
		return resp, nil
	case n < 94:
		w.positive(req, resp)
		resp.Truncated = true
		return resp, nil
	default:
		w.positive(req, resp)
		resp.Question[0].Name = "other." + resp.Question[0].Name
		return resp, nil
	}
}

func (w *world) positive(req, resp *dns.Msg) *stored {
	q := req.Question[0]
	owner := q.Name
	low := uint32(1<<31 - 1)
	if w.rng.IntN(4) == 0 {
		ttl := w.ttl()
		low = min(low, rfcTTL(ttl))
		resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME,
			Class: dns.ClassINET, Ttl: ttl}, Target: "target.example.net."})
		owner = "target.example.net."
	}
	for range 1 + w.rng.IntN(3) {
		ttl := w.ttl()
		low = min(low, rfcTTL(ttl))
		resp.Answer = append(resp.Answer, w.address(owner, q.Qtype, ttl))
	}
	life := min(max(low, seconds(w.opts.MinTTL)), w.maxTTL())
	if life == 0 {
		return nil
	}
	return &stored{rcode: NOERROR, ttl: time.Duration(life) * time.Second}
}

// address is an A or AAAA record whose address is the marker.
func (w *world) address(owner string, qtype uint16, ttl uint32) dns.RR {
	h := dns.RR_Header{Name: owner, Rrtype: qtype, Class: dns.ClassINET, Ttl: ttl}
	ip := net.IPv4(byte(w.seq>>24), byte(w.seq>>16), byte(w.seq>>8), byte(w.seq))
	if qtype == AAAA {
		return &dns.AAAA{Hdr: h, AAAA: ip.To16()}
	}
	return &dns.A{Hdr: h, A: ip.To4()}
}

func (w *world) negative(req, resp *dns.Msg) *stored {
	resp.Rcode = []int{NOERROR, NXDOMAIN}[w.rng.IntN(2)]
	if w.rng.IntN(7) == 0 {
		return nil // no SOA: no negative TTL
	}
	ttl, minimum := w.ttl(), w.ttl()%5000
	resp.Ns = []dns.RR{w.soa(ttl, minimum)}
	life := min(rfcTTL(ttl), minimum, w.maxTTL())
	if life == 0 {
		return nil
	}
	return &stored{rcode: resp.Rcode, ttl: time.Duration(life) * time.Second}
}

// soa carries the marker as its serial.
func (w *world) soa(ttl, minimum uint32) dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns: "ns.example.com.", Mbox: "hostmaster.example.com.", Serial: w.seq, Refresh: 7200, Retry: 1800,
		Expire: 86400, Minttl: minimum}
}

func (w *world) maxTTL() uint32 {
	if w.opts.MaxTTL <= 0 {
		return seconds(cache.DefaultMaxTTL)
	}
	return seconds(w.opts.MaxTTL)
}

func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }

// marker finds which Put a served response came from.
func marker(m *dns.Msg) uint32 {
	for _, rr := range append(m.Ns, m.Answer...) {
		switch rr := rr.(type) {
		case *dns.SOA:
			return rr.Serial
		case *dns.A:
			return uint32(rr.A[0])<<24 | uint32(rr.A[1])<<16 | uint32(rr.A[2])<<8 | uint32(rr.A[3])
		case *dns.AAAA:
			v4 := rr.AAAA.To4()
			return uint32(v4[0])<<24 | uint32(v4[1])<<16 | uint32(v4[2])<<8 | uint32(v4[3])
		}
	}
	return 0
}
