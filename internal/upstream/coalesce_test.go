package upstream

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gated answers with an A record once open is closed; until then queries wait in the fake.
func gated(open <-chan struct{}) handler {
	return func(_ string, q *dns.Msg) []packet {
		<-open
		return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.7")}}
	}
}

// startGated starts a gated fake and opens the gate when the test ends at the latest.
func startGated(t *testing.T) (*fakeServer, func()) {
	open := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(open) }) }
	fake := startFake(t, gated(open))
	t.Cleanup(release) // runs before the fake's own cleanup
	return fake, release
}

// spelling returns qname with the letters chosen by the bits of i in upper case.
func spelling(qname string, i int) string {
	b := []byte(qname)
	for j := range b {
		if 'a' <= b[j] && b[j] <= 'z' && i&(1<<(j%7)) != 0 {
			b[j] -= 'a' - 'A'
		}
	}
	return string(b)
}

func TestCoalesce(t *testing.T) {
	const callers = 100
	fake, release := startGated(t)
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{fake.addr}, Options{TryTimeout: hangGuard, Metrics: m}, 0)
	reqs := make([]*dns.Msg, callers)
	resps := make([]*dns.Msg, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		reqs[i] = newRequest(spelling("coalesced.test.", i), dns.TypeA)
		reqs[i].Id = uint16(i)
		wg.Go(func() {
			resps[i], errs[i] = f.Forward(context.Background(), reqs[i], i%2 == 1) // mixed transports
			if errs[i] == nil && len(resps[i].Answer) == 1 {
				resps[i].Answer[0].Header().Ttl = uint32(i) // a caller changing its own reply
			}
		})
	}
	waitFor(t, "every caller to join", func() bool { return testutil.ToFloat64(m.coalesced) == callers-1 })
	release()
	wg.Wait()
	if n := len(fake.Queries()); n != 1 {
		t.Errorf("upstream saw %d queries, want 1", n)
	}
	for i, resp := range resps {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		checkReply(t, reqs[i], resp)
		if len(resp.Answer) != 1 || resp.Answer[0].Header().Ttl != uint32(i) {
			t.Errorf("caller %d: answer %v, want its own copy with TTL %d", i, resp.Answer, i)
		}
	}
}

// TestCoalesceKey lists which questions share an exchange.
func TestCoalesceKey(t *testing.T) {
	base := func() *dns.Msg { return newRequest("a.test.", dns.TypeA) }
	tests := []struct {
		name   string
		change func(m *dns.Msg)
		shared bool
	}{
		{name: "same question", change: func(*dns.Msg) {}, shared: true},
		{name: "other case", change: func(m *dns.Msg) { m.Question[0].Name = "A.TeSt." }, shared: true},
		{name: "other ID", change: func(m *dns.Msg) { m.Id++ }, shared: true},
		{name: "no EDNS", change: func(m *dns.Msg) { m.Extra = nil }, shared: true},
		{name: "other name", change: func(m *dns.Msg) { m.Question[0].Name = "b.test." }},
		{name: "other type", change: func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA }},
		{name: "other class", change: func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }},
		{name: "DO set", change: func(m *dns.Msg) { m.IsEdns0().SetDo() }},
		{name: "CD set", change: func(m *dns.Msg) { m.CheckingDisabled = true }},
		{name: "RD clear", change: func(m *dns.Msg) { m.RecursionDesired = false }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			other := base()
			tc.change(other)
			if shared := keyOf(base()) == keyOf(other); shared != tc.shared {
				t.Errorf("shared = %v, want %v", shared, tc.shared)
			}
		})
	}
}

// TestCoalesceCallerLeaves checks that a caller giving up does not cancel the exchange that
// another caller still waits for, and that the last one leaving does.
func TestCoalesceCallerLeaves(t *testing.T) {
	fake, release := startGated(t)
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{fake.addr}, Options{TryTimeout: hangGuard, Metrics: m}, 0)
	leaving, leave := context.WithCancel(context.Background())
	left := make(chan error, 1)
	go func() {
		_, err := f.Forward(leaving, newRequest("a.test.", dns.TypeA), false)
		left <- err
	}()
	waitFor(t, "the first query upstream", func() bool { return len(fake.Queries()) == 1 })
	stay := make(chan error, 1)
	go func() {
		_, err := f.Forward(context.Background(), newRequest("A.test.", dns.TypeA), false)
		stay <- err
	}()
	waitFor(t, "the second caller to join", func() bool { return testutil.ToFloat64(m.coalesced) == 1 })
	leave()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Errorf("leaving caller: %v, want context.Canceled", err)
	}
	release()
	if err := <-stay; err != nil {
		t.Errorf("remaining caller: %v, want an answer", err)
	}
	if n := len(fake.Queries()); n != 1 {
		t.Errorf("upstream saw %d queries, want 1", n)
	}
}

func TestOverload(t *testing.T) {
	fake := startFake(t, func(string, *dns.Msg) []packet { return nil }) // counts, never answers
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{fake.addr},
		Options{TryTimeout: hangGuard, MaxOutstanding: 1, Metrics: m}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := f.Forward(ctx, newRequest("first.test.", dns.TypeA), false)
		first <- err
	}()
	waitFor(t, "the first query upstream", func() bool { return len(fake.Queries()) == 1 })
	tests := []struct {
		name  string
		qname string
		want  error
	}{
		{name: "another question is refused", qname: "second.test.", want: ErrOverloaded},
		{name: "the same question waits for the first", qname: "FIRST.test.", want: context.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer stop()
			_, err := forwardWithin(t, ctx, f, newRequest(tc.qname, dns.TypeA), false)
			if !errors.Is(err, tc.want) {
				t.Errorf("Forward: %v, want %v", err, tc.want)
			}
			if tc.want == ErrOverloaded && !strings.Contains(err.Error(), "1 in flight") {
				t.Errorf("error %q does not say how many are in flight", err)
			}
		})
	}
	if n := testutil.ToFloat64(m.overloads); n != 1 {
		t.Errorf("overload counter %v, want 1", n)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first query: %v, want context.Canceled", err)
	}
}
