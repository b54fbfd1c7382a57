package cache_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshdns/meshdns/internal/cache"
	"github.com/meshdns/meshdns/internal/testutil"
	"github.com/miekg/dns"
)

func TestFailureRecheck(t *testing.T) {
	clk := testutil.NewClock()
	c := cache.New(cache.Options{ServeStale: time.Hour, Now: clk.Now})
	req := query("www.example.org.", dns.TypeA)
	c.Put(req, reply(t, req, dns.RcodeSuccess, []string{"www.example.org. 60 IN A 192.0.2.1"}, nil))
	clk.Advance(2 * time.Minute)
	if _, st, _ := c.Get(req); st != cache.Stale || !c.ShouldRefresh(req) {
		t.Fatalf("stale entry: status %v, refresh %v; want Stale and a refresh", st, c.ShouldRefresh(req))
	}
	c.RefreshFailed(req)
	clk.Advance(cache.FailureRecheck - time.Second)
	if c.ShouldRefresh(req) {
		t.Errorf("refresh asked again within the failure recheck window")
	}
	clk.Advance(time.Second)
	if !c.ShouldRefresh(req) {
		t.Errorf("no refresh after the failure recheck window")
	}
	c.RefreshFailed(req)
	c.Put(req, reply(t, req, dns.RcodeSuccess, []string{"www.example.org. 60 IN A 192.0.2.2"}, nil))
	if !c.ShouldRefresh(req) {
		t.Errorf("a new answer did not clear the failure")
	}
}

func TestFlush(t *testing.T) {
	c := cache.New(cache.Options{})
	req := query("www.example.org.", dns.TypeA)
	c.Put(req, reply(t, req, dns.RcodeSuccess, []string{"www.example.org. 60 IN A 192.0.2.1"}, nil))
	c.Flush()
	if _, st, _ := c.Get(req); st != cache.Miss {
		t.Errorf("after Flush: %v, want Miss", st)
	}
	if p, n := c.Len(); p+n != 0 {
		t.Errorf("after Flush: %d+%d entries", p, n)
	}
}

func TestLargeAnswerNotKept(t *testing.T) {
	c := cache.New(cache.Options{})
	req := query("big.example.org.", dns.TypeTXT)
	var rrs []string
	for i := range 40 { // 40 x ~250 bytes: over MaxEntryBytes
		rrs = append(rrs, "big.example.org. 60 IN TXT \""+strings.Repeat(string(rune('a'+i%26)), 240)+"\"")
	}
	c.Put(req, reply(t, req, dns.RcodeSuccess, rrs, nil))
	if _, st, _ := c.Get(req); st != cache.Miss {
		t.Errorf("a %d-record answer over %d bytes was cached", len(rrs), cache.MaxEntryBytes)
	}
}

// TestOneRefreshPerKey walks BeginRefresh/EndRefresh: the first query finding an entry stale
// starts its refresh, later ones get the same refresh to wait for until it ends; a failed one
// holds off the next for the failure recheck window, a succeeded one lets the next start.
func TestOneRefreshPerKey(t *testing.T) {
	clk := testutil.NewClock()
	c := cache.New(cache.Options{ServeStale: time.Hour, Now: clk.Now})
	req := query("www.example.org.", dns.TypeA)
	other := query("other.example.org.", dns.TypeA)
	for _, r := range []*dns.Msg{req, other} {
		c.Put(r, reply(t, r, dns.RcodeSuccess, []string{r.Question[0].Name + " 60 IN A 192.0.2.1"}, nil))
	}
	clk.Advance(2 * time.Minute)
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	start, first := c.BeginRefresh(req)
	if !start || first == nil || closed(first) {
		t.Fatalf("first BeginRefresh = %v, %v; want to start an open refresh", start, first)
	}
	if start, ended := c.BeginRefresh(req); start || ended != first {
		t.Errorf("second BeginRefresh = %v, %v; want to wait for the first refresh", start, ended)
	}
	if start, _ := c.BeginRefresh(other); !start {
		t.Errorf("another name waits for a refresh it does not share")
	}
	c.EndRefresh(other, false)
	c.EndRefresh(req, true)
	if !closed(first) {
		t.Error("EndRefresh did not wake the waiters")
	}
	if start, ended := c.BeginRefresh(req); start || ended != nil {
		t.Errorf("BeginRefresh after a failed refresh = %v, %v; want stale at once", start, ended)
	}
	clk.Advance(cache.FailureRecheck)
	start, again := c.BeginRefresh(req)
	if !start {
		t.Fatal("no refresh after the failure recheck window")
	}
	c.EndRefresh(req, false)
	if !closed(again) {
		t.Error("a succeeded refresh did not wake the waiters")
	}
	if start, _ := c.BeginRefresh(req); !start {
		t.Error("no new refresh after a succeeded one")
	}
}
