package upstream

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// gated answers like h once open is closed; until then queries wait in the fake.
func gated(open <-chan struct{}, h handler) handler {
	return func(network string, q *dns.Msg) []packet {
		<-open
		return h(network, q)
	}
}

// startGated starts a fake that answers with an A record once released.
func startGated(t *testing.T) (*fakeServer, func()) {
	return startHeld(t, answerWith(dns.RcodeSuccess, "192.0.2.7"))
}

// startHeld starts a gated fake answering like h and opens the gate when the test ends at
// the latest.
func startHeld(t *testing.T, h handler) (*fakeServer, func()) {
	open := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(open) }) }
	fake := startFake(t, gated(open, h))
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

// TestCoalesce sends 100 identical questions, in assorted spellings, over one transport at
// a time: one upstream query answers them all, each with its own copy of the records.
func TestCoalesce(t *testing.T) {
	for _, network := range networks {
		t.Run(network, func(t *testing.T) { testCoalesce(t, network == "tcp") })
	}
}

func testCoalesce(t *testing.T, tcp bool) {
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
			resps[i], errs[i] = f.Forward(context.Background(), reqs[i], Via{TCP: tcp})
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
			t.Fatalf("caller %d: answer %v, want its own copy with TTL %d", i, resp.Answer, i)
		}
		if got, want := resp.Answer[0].Header().Name, reqs[i].Question[0].Name; got != want {
			t.Errorf("caller %d: answer owned by %q, want its own spelling %q", i, got, want)
		}
	}
}

// TestCoalesceKey lists which questions share an exchange.
func TestCoalesceKey(t *testing.T) {
	base := func() *dns.Msg { return newRequest("a.test.", dns.TypeA) }
	tests := []struct {
		name   string
		change func(m *dns.Msg)
		tcp    bool // the other question's transport; base is UDP
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
		{name: "over TCP", change: func(*dns.Msg) {}, tcp: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			other := base()
			tc.change(other)
			if shared := keyOf(base(), false) == keyOf(other, tc.tcp); shared != tc.shared {
				t.Errorf("shared = %v, want %v", shared, tc.shared)
			}
		})
	}
}

// TestCoalesceTransport checks that a TCP client does not join a UDP exchange, which could
// end truncated and hand it TC=1 over TCP: it gets its own exchange, over TCP.
func TestCoalesceTransport(t *testing.T) {
	open := make(chan struct{})
	fake := startFake(t, func(network string, q *dns.Msg) []packet {
		if network == "udp" {
			<-open // the UDP exchange stays in flight
		}
		return []packet{{msg: replyA(q, dns.RcodeSuccess, "192.0.2.7")}}
	})
	t.Cleanup(func() { close(open) }) // runs before the fake's own cleanup
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{fake.addr}, Options{TryTimeout: hangGuard, Metrics: m}, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	udpDone := make(chan error, 1)
	go func() {
		_, err := f.Forward(ctx, newRequest("a.test.", dns.TypeA), Via{})
		udpDone <- err
	}()
	waitFor(t, "the UDP query upstream", func() bool { return len(fake.Queries()) == 1 })
	resp, err := forwardWithin(t, context.Background(), f, newRequest("a.test.", dns.TypeA), true)
	if err != nil || resp.Truncated || len(resp.Answer) != 1 {
		t.Fatalf("TCP caller: Forward = %v, %v; want a full answer while the UDP exchange is held", resp, err)
	}
	if n := testutil.ToFloat64(m.coalesced); n != 0 {
		t.Errorf("coalesced counter %v, want 0", n)
	}
	if got, want := fake.Networks(), []string{"udp", "tcp"}; !slices.Equal(got, want) {
		t.Errorf("upstream saw queries over %v, want %v", got, want)
	}
	cancel()
	if err := <-udpDone; !errors.Is(err, context.Canceled) {
		t.Errorf("UDP caller: %v, want context.Canceled", err)
	}
}

// TestCoalesceSpelling checks that callers sharing an exchange each get the records in the
// spelling of their own question, not in that of the caller who started it.
func TestCoalesceSpelling(t *testing.T) {
	fake, release := startGated(t)
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{fake.addr}, Options{TryTimeout: hangGuard, Metrics: m}, 0)
	names := []string{"SLOW1.TEST.", "slow1.test."}
	resps := make([]*dns.Msg, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { resps[i], errs[i] = f.Forward(context.Background(), newRequest(name, dns.TypeA), Via{}) })
		if i == 0 {
			waitFor(t, "the first query upstream", func() bool { return len(fake.Queries()) == 1 })
		}
	}
	waitFor(t, "the second caller to join", func() bool { return testutil.ToFloat64(m.coalesced) == 1 })
	release()
	wg.Wait()
	for i, name := range names {
		if errs[i] != nil || len(resps[i].Answer) != 1 {
			t.Fatalf("%s: Forward = %v, %v; want one answer", name, resps[i], errs[i])
		}
		if got := resps[i].Answer[0].Header().Name; got != name {
			t.Errorf("%s: answer owned by %q, want %q", name, got, name)
		}
	}
}

// TestCoalesceAD checks that a caller who set neither AD nor DO gets no AD bit, though it
// joined an exchange started by one who asked for it.
func TestCoalesceAD(t *testing.T) {
	fake, release := startHeld(t, func(_ string, q *dns.Msg) []packet {
		m := replyA(q, dns.RcodeSuccess, "192.0.2.7")
		m.AuthenticatedData = q.AuthenticatedData // a validator answering what was asked
		return []packet{{msg: m}}
	})
	m := NewMetrics(prometheus.NewRegistry())
	f := newForwarder(t, []netip.AddrPort{fake.addr}, Options{TryTimeout: hangGuard, Metrics: m}, 0)
	asker := newRequest("a.test.", dns.TypeA)
	asker.AuthenticatedData = true
	first := make(chan *dns.Msg, 1)
	go func() {
		resp, _ := f.Forward(context.Background(), asker, Via{})
		first <- resp
	}()
	waitFor(t, "the first query upstream", func() bool { return len(fake.Queries()) == 1 })
	joined := make(chan *dns.Msg, 1)
	go func() {
		resp, _ := f.Forward(context.Background(), newRequest("a.test.", dns.TypeA), Via{})
		joined <- resp
	}()
	waitFor(t, "the second caller to join", func() bool { return testutil.ToFloat64(m.coalesced) == 1 })
	release()
	if resp := <-first; resp == nil || !resp.AuthenticatedData {
		t.Errorf("caller with AD: reply %v, want AD set", resp)
	}
	if resp := <-joined; resp == nil || resp.AuthenticatedData {
		t.Errorf("caller without AD or DO: reply %v, want AD clear", resp)
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
		_, err := f.Forward(leaving, newRequest("a.test.", dns.TypeA), Via{})
		left <- err
	}()
	waitFor(t, "the first query upstream", func() bool { return len(fake.Queries()) == 1 })
	stay := make(chan error, 1)
	go func() {
		_, err := f.Forward(context.Background(), newRequest("A.test.", dns.TypeA), Via{})
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
		_, err := f.Forward(ctx, newRequest("first.test.", dns.TypeA), Via{})
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
	if n := testutil.ToFloat64(m.overloads.WithLabelValues("total")); n != 1 {
		t.Errorf("overload counter %v, want 1", n)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first query: %v, want context.Canceled", err)
	}
}
